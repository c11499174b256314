"""The local-VAE: bits-back chains through one batched stack, exact across chain counts and
thread counts, its code length the ELBO; trained from a local model, exported as a new
version of ``vae`` beside the hierarchical one, whose files keep decoding."""

import math

import numpy as np
import pytest
import torch

from neuralzip import api, codecs
from neuralzip.codecs import local_vae
from neuralzip.codecs.base import ImageShape, PayloadError
from neuralzip.images import PixelImage

from .conftest import smooth_image
from .test_train import tiny_cifar  # noqa: F401  (fixture)

TINY = dict(width=16, mixtures=3, latent_channels=2, hidden=8, features=4)


def tiny_model(seed: int = 0):
    from neuralzip.nets.local_vae import LocalVAE, LocalVAEConfig

    torch.manual_seed(seed)
    model = LocalVAE(LocalVAEConfig(**TINY), seed=seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.fixture(scope="module")
def tiny():
    model = tiny_model()
    calibration = np.stack([smooth_image(32, 32, seed=s) for s in range(4)])
    return model, local_vae.LocalVAECodec.from_float(model, calibration)


def _shapes(images):
    return [ImageShape(im.mode, im.width, im.height) for im in images]


def test_round_trip_any_sizes(tiny):
    _, codec = tiny
    images = [PixelImage("RGB", smooth_image(h, w, seed=h * w)) for h, w in [(32, 32), (5, 7), (40, 33), (1, 1)]]
    encoded = codec.encode(images)
    assert len(encoded.payloads) == 1
    decoded = codec.decode(encoded.payloads, _shapes(images))
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(images, decoded))


def test_chains_and_thread_counts_decode_the_same(tiny, monkeypatch):
    """Uneven chains stepped together in one batched stack; decoding with another thread
    count gives the same pixels; a wrong chain count is an error."""
    _, codec = tiny
    monkeypatch.setattr(local_vae, "TILES_PER_CHAIN", 2)
    images = [PixelImage("RGB", smooth_image(h, w, seed=h + w)) for h, w in [(32, 32), (40, 33), (32, 32), (9, 70)]]
    encoded = codec.encode(images)  # 9 tiles: 4 chains of 2 or 3
    assert encoded.payloads[0][0] == 4
    for threads in ("1", "2"):
        monkeypatch.setenv("NZIP_THREADS", threads)
        decoded = codec.decode(encoded.payloads, _shapes(images))
        assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(images, decoded))
    payload = bytearray(encoded.payloads[0])
    payload[0] = 9  # more chains than tiles
    with pytest.raises(PayloadError):
        codec.decode([bytes(payload)], _shapes(images))


def test_chained_cost_is_the_elbo_and_first_image_pays_initial_bits(tiny):
    model, codec = tiny
    images = [PixelImage("RGB", smooth_image(32, 32, seed=s)) for s in range(6)]
    one = len(codec.encode(images[:1]).payloads[0])
    six = len(codec.encode(images).payloads[0])
    with torch.no_grad():
        elbo_bytes = float(model.nll_nats(torch.from_numpy(np.stack([im.pixels for im in images]))).mean()) / math.log(2) / 8
    per_image_chained = (six - one) / 5
    assert per_image_chained < one  # later images get their bits back
    assert abs(per_image_chained - elbo_bytes) < 0.03 * elbo_bytes


@pytest.mark.parametrize("activation_bits", [8, 10])
def test_residual_blocks_round_trip_at_the_elbo(activation_bits):
    """A decoder grown to residual blocks (vae v8 on) codes exactly, at its ELBO, with 8-bit
    or wide activations (the conditioning features stay 8-bit)."""
    from neuralzip.nets.local_vae import LocalVAE, LocalVAEConfig

    torch.manual_seed(1)
    model = LocalVAE(LocalVAEConfig(**TINY, blocks=1, activation_bits=activation_bits), seed=1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    codec = local_vae.LocalVAECodec.from_float(model, np.stack([smooth_image(32, 32, seed=s) for s in range(4)]))
    assert codec.networks.decoder.layers["hidden"].high == 2**activation_bits - 1
    assert codec.networks.conditioner[-1].high == 255
    images = [PixelImage("RGB", smooth_image(h, w, seed=s)) for s, (h, w) in enumerate([(32, 32)] * 5 + [(9, 6)])]
    encoded = codec.encode(images)
    decoded = codec.decode(encoded.payloads, _shapes(images))
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(images, decoded))
    one = len(codec.encode(images[:1]).payloads[0])
    five = len(codec.encode(images[:5]).payloads[0])
    with torch.no_grad():
        elbo_bytes = float(model.nll_nats(torch.from_numpy(np.stack([im.pixels for im in images[:5]]))).mean()) / math.log(2) / 8
    assert abs((five - one) / 4 - elbo_bytes) < 0.03 * elbo_bytes


def test_exact_decoder_matches_the_float_model(tiny):
    """The exact networks compute what the float model does, up to 8-bit rounding: the
    posterior means and the decoder's NLL given them."""
    from neuralzip.nets.vae import latent_params

    model, codec = tiny
    images = np.stack([smooth_image(32, 32, seed=s) for s in range(3)])
    with torch.no_grad():
        mean, _ = latent_params(model.posterior(torch.from_numpy(images)))
    exact = codec.networks.posterior_params(images)[:, 0::2] * 127.5 / 4096  # mean channels, bins
    assert np.abs(exact - mean.numpy()).max() < 0.05 * (np.abs(mean.numpy()).max() + 1)


def test_corruption_is_detected(tiny):
    _, codec = tiny
    images = [PixelImage("RGB", smooth_image(32, 32, seed=s)) for s in range(2)]
    payload = bytearray(codec.encode(images).payloads[0])
    payload[len(payload) // 3] ^= 0x08
    try:
        decoded = codec.decode([bytes(payload)], _shapes(images))
    except PayloadError:
        return
    assert not all(np.array_equal(a.pixels, b.pixels) for a, b in zip(images, decoded))


def test_trained_from_a_local_model_exported_as_a_new_vae_version(tiny_cifar, tmp_path, monkeypatch):  # noqa: F811
    """A local run, then a local-VAE run started from its weights (the decoder takes them,
    the latent starts unread), exported as vae v2 beside a hierarchical v1: -m vae uses v2,
    files made with v1 still decode."""
    from neuralzip.export import export_run
    from neuralzip.train import main as train_main

    models = tmp_path / "models"
    monkeypatch.setenv("NZIP_MODELS", str(models))
    common = ["--data", str(tiny_cifar), "batch_size=4", "threads=1", "autocast=false", "eval_every_steps=2",
              "eval_images=4"]
    assert train_main(["local", "--out", str(tmp_path / "local"), "width=8", "mixtures=2", "max_steps=2"] + common) == 0
    export_run(tmp_path / "local", "local", str(tiny_cifar), directory=models)
    assert train_main(["vae", "--out", str(tmp_path / "vae"), "hidden=8", "latents=[2,2,2]", "mixtures=2",
                       "max_steps=1"] + common) == 0
    export_run(tmp_path / "vae", "vae", str(tiny_cifar), directory=models)
    codecs.forget("vae")
    image = PixelImage("RGB", smooth_image(32, 32, seed=5))
    old_file = api.compress(image, model="vae")

    run = tmp_path / "localvae"
    assert train_main(["local-vae", "--out", str(run), "--init-from", str(models / "local-v1.safetensors"),
                       "width=8", "mixtures=2", "latent_channels=2", "hidden=8", "features=4", "qat=true",
                       "max_steps=4"] + common) == 0
    checkpoint = json_load(run / "checkpoint.json")
    assert checkpoint["history"][-1]["kl_bits_per_image"]  # the latent's cost is logged
    card = export_run(run, "vae", str(tiny_cifar), directory=models)
    assert card["family"] == "local-vae" and card["version"] == 2 and card["codec_id"] == 48
    assert len(card["test_nll_bpd"]["kl_bits_per_image"]) == 2
    nll = card["test_nll_bpd"]
    assert nll["iw16_nll"] > 0 and nll["iw_subset_elbo"] > 0  # the IW bound beside the ELBO of the same images
    codecs.forget("vae")
    try:
        assert isinstance(codecs.get_codec("vae"), local_vae.LocalVAECodec)
        new_file = api.compress(image, model="vae")
        assert np.array_equal(api.decompress(new_file).pixels, image.pixels)
        assert np.array_equal(api.decompress(old_file).pixels, image.pixels)  # v1's file, v1's codec
    finally:
        codecs.forget("vae")


def json_load(path):
    import json

    return json.loads(path.read_text())


def test_single_files_coded_side_by_side_are_the_files_coded_alone(tiny, monkeypatch):
    """encode_separately gives each image exactly encode([image])'s payload (a large image
    split into chains as alone), and decode_separately restores them all."""
    _, codec = tiny
    monkeypatch.setattr(local_vae, "TILES_PER_CHAIN", 2)
    images = [PixelImage("RGB", smooth_image(h, w, seed=h * w)) for h, w in [(32, 32), (70, 40), (5, 7)]]
    together = codec.encode_separately(images)
    alone = [codec.encode([image]).payloads[0] for image in images]
    assert together.payloads == alone
    assert together.payloads[1][0] == 3  # 6 tiles: 3 chains, as alone
    decoded = codec.decode_separately(together.payloads, _shapes(images))
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(images, decoded))
    codecs.register(codec)
    try:  # the batched API uses it: files identical to compress(), decoded in one call
        files = api.encode_batch(images, model="vae")
        assert files == [api.compress(image, model="vae") for image in images]
        assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(images, api.decode_batch(files)))
    finally:
        codecs.forget("vae")


def test_damaged_single_files_fail_alone(tiny):
    """decode_each: a damaged file in a batch fails on its own, the others decode."""
    _, codec = tiny
    images = [PixelImage("RGB", smooth_image(32, 32, seed=s)) for s in range(4)]
    payloads = codec.encode_separately(images).payloads
    damaged = bytearray(payloads[1])
    damaged[len(damaged) // 2] ^= 0x10
    results = codec.decode_each([payloads[0], bytes(damaged), payloads[2], payloads[3][:3]], _shapes(images))
    assert np.array_equal(results[0].pixels, images[0].pixels) and np.array_equal(results[2].pixels, images[2].pixels)
    assert isinstance(results[3], PayloadError)
    assert isinstance(results[1], PayloadError) or not np.array_equal(results[1].pixels, images[1].pixels)


def test_auxiliary_decoder_trains_the_encoder_and_never_enters_the_elbo():
    """With ``aux_weight`` the loss adds the auxiliary decoder's NLL (its gradient reaches the
    encoder through z); the ELBO, what the coder pays, is the same model's with or without it."""
    from neuralzip.nets.local_vae import LocalVAE, LocalVAEConfig

    images = torch.from_numpy(np.stack([smooth_image(8, 8, seed=s) for s in range(3)]))
    plain = LocalVAE(LocalVAEConfig(**TINY, size=8), seed=0)
    helped = LocalVAE(LocalVAEConfig(**TINY, size=8, aux_weight=0.5), seed=0)
    shared = {k: v for k, v in helped.state_dict().items() if not k.startswith(LocalVAE.TRAINING_ONLY_PREFIX)}
    assert shared.keys() == plain.state_dict().keys()
    plain.load_state_dict(shared)
    torch.manual_seed(1)
    elbo_plain = plain.nll_nats(images)
    torch.manual_seed(1)
    elbo_helped = helped.nll_nats(images)
    assert torch.equal(elbo_plain, elbo_helped)
    torch.manual_seed(1)
    _, _, log_aux = helped.elbo_terms(images, auxiliary=True)
    torch.manual_seed(1)
    loss_plain = plain.loss_nats(images)
    torch.manual_seed(1)
    loss_helped = helped.loss_nats(images)
    assert torch.allclose(loss_helped - loss_plain, -0.5 * log_aux[0], rtol=1e-5, atol=1e-3)
    torch.manual_seed(1)
    (-helped.elbo_terms(images, auxiliary=True)[2].sum()).backward()
    assert helped.weight["posterior0"].grad.abs().sum() > 0  # the auxiliary NLL teaches the encoder
    assert helped.decoder.weight["input"].grad is None  # and leaves the local decoder alone


def test_auxiliary_decoder_switched_on_and_off_between_resumes(tiny_cifar, tmp_path):  # noqa: F811
    """Its parameters start fresh when a run turns it on, are checkpointed while it is on and
    dropped when it is turned off; the export is the plain model."""
    from safetensors.torch import load_file

    from neuralzip.export import export_run
    from neuralzip.train import main as train_main

    run = tmp_path / "run"
    common = ["local-vae", "--out", str(run), "--data", str(tiny_cifar), "batch_size=4", "threads=1",
              "autocast=false", "eval_every_steps=100", "eval_images=4"]
    assert train_main(common + ["width=8", "mixtures=2", "latent_channels=2", "hidden=8", "features=4",
                                "max_steps=1"]) == 0
    assert not any("auxiliary" in k for k in load_file(str(run / "checkpoint.safetensors")))
    assert train_main(common + ["aux_weight=1.0", "max_steps=3"]) == 0
    saved = load_file(str(run / "checkpoint.safetensors"))
    assert {"model.auxiliary.weight", "ema.auxiliary.weight", "optim.auxiliary.weight.exp_avg"} <= saved.keys()
    assert train_main(common + ["aux_weight=0.0", "max_steps=4"]) == 0
    saved = load_file(str(run / "checkpoint.safetensors"))
    assert json_load(run / "checkpoint.json")["step"] == 4
    assert not any("auxiliary" in k for k in saved)
    card = export_run(run, "vae", str(tiny_cifar), directory=tmp_path / "models")
    assert card["config"]["aux_weight"] == 0.0


def test_latents_popped_from_whole_tables_are_the_searched_ones(tiny, monkeypatch):
    """Few chains pop their latents by lookups in whole tables, many by searches: the same
    bytes and pixels either way (an archive of 3 tiles as 1 and as 3 chains, a bigger image)."""
    _, codec = tiny
    images = [PixelImage("RGB", smooth_image(h, w, seed=h * w)) for h, w in [(32, 32), (40, 33)]]
    for tiles_per_chain in (300, 1):
        monkeypatch.setattr(local_vae, "TILES_PER_CHAIN", tiles_per_chain)
        payloads = []
        for tabulated in (local_vae.TABULATED_CHAINS, 0):
            monkeypatch.setattr(local_vae, "TABULATED_CHAINS", tabulated)
            encoded = codec.encode(images)
            decoded = codec.decode(encoded.payloads, _shapes(images))
            assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(images, decoded))
            payloads.append(encoded.payloads[0])
        assert payloads[0] == payloads[1]


def test_autoregressive_prior_is_causal_and_grows_from_a_factorized_one():
    """Each latent cell's prior parameters depend only on the cells before it in raster
    order (the order a decoder would pop them), and a model grown from a factorized-prior one
    starts with exactly its ELBO (the prior network adds nothing until trained). It has no
    exact coder yet: exporting it is refused, not coded wrongly."""
    from neuralzip.exact.local_vae import quantize_vae
    from neuralzip.nets.local_vae import LocalVAE, LocalVAEConfig

    factorized = tiny_model()
    grown = LocalVAE(LocalVAEConfig(**TINY, prior_horizon=2, prior_hidden=8), seed=3)
    grown.grow_from(factorized.state_dict())
    images = torch.from_numpy(np.stack([smooth_image(32, 32, seed=s) for s in range(3)]))
    torch.manual_seed(1)
    before = factorized.nll_nats(images)
    torch.manual_seed(1)
    assert torch.equal(grown.nll_nats(images), before)
    with torch.no_grad():
        grown.weight["prior2"].normal_(0, 0.5)
        z = torch.randn(2, 2, 8, 8) * 40
        params = grown.prior_params(z)
        side = 8
        for cell in (0, 9, 27, 63):
            i, j = divmod(cell, side)
            changed = z.clone()
            changed[:, :, i, j] += 100.0
            moved = (grown.prior_params(changed) - params).abs().amax(dim=(0, 1)).flatten()
            assert torch.all(moved[: cell + 1] == 0)  # itself and every earlier cell: untouched
            if cell < 63:
                assert moved[cell + 1 :].max() > 0  # a later cell reads it
    with pytest.raises(ValueError, match="no exact coder"):
        quantize_vae(grown, images.numpy())
    with pytest.raises(ValueError, match="lacking"):
        partial = {k: v for k, v in factorized.state_dict().items() if k != "weight.posterior2"}
        LocalVAE(LocalVAEConfig(**TINY, prior_horizon=2)).grow_from(partial)
