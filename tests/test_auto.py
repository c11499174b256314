"""Any size, any mode: ``auto`` round-trips every mode exactly at odd sizes and is never
larger than the best classical codec."""

import numpy as np
import pytest

from neuralzip import api, codecs
from neuralzip.images import PixelImage

from .conftest import smooth_image

SIZES = [(1, 1), (1, 7), (7, 1), (17, 33), (13, 31)]


def _image(mode: str, h: int, w: int, seed: int) -> PixelImage:
    rgb = smooth_image(h, w, 4, seed)
    if mode in ("RGB", "RGBA", "L", "LA"):
        return PixelImage(mode, np.ascontiguousarray(rgb[:, :, : {"RGB": 3, "RGBA": 4, "L": 1, "LA": 2}[mode]]))
    if mode == "P":
        return PixelImage("P", (rgb[:, :, :1] % 16).astype(np.uint8), palette=bytes(range(48)), palette_mode="RGB")
    if mode == "1":
        return PixelImage("1", (rgb[:, :, :1] > 128).astype(np.uint8))
    if mode == "I;16":
        return PixelImage("I;16", rgb[:, :, :1].astype(np.uint16) * 257)
    return PixelImage("RGB;16", rgb[:, :, :3].astype(np.uint16) * 251 + 3)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "1", "I;16", "RGB;16"])
def test_auto_round_trips_every_mode_at_odd_sizes(tiny_codecs, monkeypatch, mode):
    monkeypatch.setattr(codecs, "spec_available", lambda spec: True)  # the tiny model stands in for the shipped one
    for i, (h, w) in enumerate(SIZES):
        image = _image(mode, h, w, i)
        data = api.compress(image, model="auto")
        back = api.decompress(data)
        assert back.mode == mode and np.array_equal(back.pixels, image.pixels), (mode, h, w)
        if mode == "P":
            assert back.palette == image.palette
        classical = [api.compress(image, model=name) for name in ("png", "webp", "jxl", "j2k")
                     if codecs.get_codec(name).supports(image)]
        assert len(data) <= min(len(c) for c in classical)


def test_auto_explains_its_choice(tiny_codecs, monkeypatch):
    monkeypatch.setattr(codecs, "spec_available", lambda spec: True)
    image = _image("RGB", 8, 8, 3)
    result = api.compress_batch([image], "auto")[0]
    text = result.choice.explain(image.subpixels)
    assert text.startswith(f"auto chose {result.codec}") and "jxl" in text and "png" in text
    tight = api.compress_batch([image], "auto", budget=1e-6)[0]
    assert "skipped" in tight.choice.explain(image.subpixels)


def test_decoder_refuses_images_above_the_pixel_limit():
    from neuralzip.container import FormatError

    data = api.compress(_image("RGB", 20, 20, 1), model="png")
    with pytest.raises(FormatError, match="exceeds the limit"):
        api.decode_container(__import__("neuralzip.container", fromlist=["unpack"]).unpack(data), max_pixels=100)


def test_classical_codecs_come_first_and_slow_decoders_are_skipped(tiny_codecs, monkeypatch):
    from neuralzip import auto

    monkeypatch.setattr(codecs, "spec_available", lambda spec: True)
    assert auto.candidates()[:4] == ["jxl", "webp", "j2k", "png"]
    image = _image("RGB", 16, 16, 5)
    # pixelcnn would take ~100 s to decode this image: not tried within a 10 s budget
    monkeypatch.setitem(auto.DECODE_PIXELS_PER_SECOND, "pixelcnn", image.width * image.height / 100)
    choice = api.compress_batch([image], "auto", budget=10, candidates="all")[0].choice
    assert "pixelcnn" not in choice.sizes and "to decode" in choice.skipped["pixelcnn"]
    assert {"jxl", "webp", "j2k", "png"} <= set(choice.sizes)


def test_auto_tries_the_slow_torch_models_only_when_asked(tiny_codecs, monkeypatch):
    from neuralzip import auto

    monkeypatch.setattr(codecs, "spec_available", lambda spec: True)
    default = auto.candidates()
    assert default[:4] == ["jxl", "webp", "j2k", "png"] and {"local", "local-photo"} <= set(default)
    assert not set(default) & set(auto.ON_REQUEST)
    assert auto.candidates("all") == list(auto.ORDER)
    assert auto.candidates("flow, jxl") == ["jxl", "flow"]  # in auto's order: the classical ones first
    image = _image("RGB", 12, 12, 6)
    plain = api.compress_batch([image], "auto")[0].choice
    assert set(plain.sizes) == set(default) and not set(plain.skipped) & set(auto.ON_REQUEST)
    every = api.compress_batch([image], "auto", candidates="all")[0].choice
    assert set(every.sizes) == set(auto.ORDER)
    assert min(every.sizes.values()) <= min(plain.sizes.values())
    with pytest.raises(codecs.UnknownCodecError, match="cannot try 'jpeg'"):
        auto.candidates(["jpeg"])
    monkeypatch.setattr(codecs, "spec_available", lambda spec: spec.name != "flow")
    with pytest.raises(codecs.UnknownCodecError, match="not installed"):
        auto.candidates("flow")


def test_large_images_estimate_before_coding(tiny_codecs, monkeypatch):
    """On an image above the sample size, codecs that cannot win are estimated, not coded."""
    from neuralzip import auto

    monkeypatch.setattr(codecs, "spec_available", lambda spec: True)
    image = PixelImage("RGB", smooth_image(auto.SAMPLE_SIDE + 8, auto.SAMPLE_SIDE + 40, 3, 2))
    choice = api.compress_batch([image], "auto")[0].choice
    assert "jxl" in choice.sizes  # the first codec always codes in full
    estimated = [name for name, why in choice.skipped.items() if "from a sample" in why]
    assert estimated  # the tiny random models cannot beat JPEG-XL, and were not coded in full
    assert not set(estimated) & set(choice.sizes)
    assert len(api.compress_batch([image], "auto")[0].data) <= len(api.compress(image, model="jxl"))


def test_coded_bytes_compare_whole_single_files():
    """A sealing codec's payload holds the checksum a compact header holds for the others:
    after coded_bytes, what remains of every codec's file is the same, so the smallest
    coded_bytes is the smallest file."""
    from neuralzip.auto import coded_bytes

    image = _image("RGB", 32, 32, 9)
    rest = set()
    for name in ("local", "png", "jxl"):
        codecs.forget(name)  # the shipped codec, not a tiny one another test registered
        payload = codecs.get_codec(name).encode([image]).payloads[0]
        rest.add(len(api.compress(image, model=name)) - coded_bytes(name, payload))
    assert len(rest) == 1


def test_a_local_model_estimated_worse_than_another_on_the_same_pixels_is_skipped(tiny_codecs, monkeypatch):
    """The local models estimate from the same pixel sample: on a large image the one whose
    estimate is clearly above another's is neither fitted nor coded; equal ones both are."""
    from neuralzip import auto

    monkeypatch.setattr(codecs, "spec_available", lambda spec: True)
    monkeypatch.setattr(auto, "SAMPLE_MARGIN", 1e9)  # against the classical codecs, every estimate may win
    monkeypatch.setattr(auto, "SAMPLED_MARGIN", 1e9)
    image = PixelImage("RGB", smooth_image(auto.SAMPLE_SIDE + 8, auto.SAMPLE_SIDE + 40, 3, 4))
    names = ["jxl", "local", "local-photo"]
    local, photo = tiny_codecs["local"], tiny_codecs["local-photo"]
    plain = local.estimate_bits  # the tiny ones share a network: without offsets, equal estimates
    monkeypatch.setattr(local, "estimate_bits", lambda img, target=None, adapt=True: plain(img, target, False))
    monkeypatch.setattr(photo, "estimate_bits", lambda img, target=None, adapt=True: plain(img, target, False))
    both = auto.choose([image], names=names)[0]
    assert {"local", "local-photo"} <= set(both.sizes)

    monkeypatch.setattr(photo, "estimate_bits", lambda img, target=None, adapt=True: 1.05 * plain(img, target, False))
    choice = auto.choose([image], names=names)[0]
    assert "local" in choice.sizes and "local-photo" not in choice.sizes
    assert "from the same pixels" in choice.skipped["local-photo"] and "local" in choice.skipped["local-photo"]


def test_local_models_whose_fitted_estimates_differ_code_only_the_better(tiny_codecs, monkeypatch):
    """Equal plain estimates, complete estimates (offsets fitted, computed while JPEG-XL
    encodes) 1% apart: the worse local model is skipped before its full encode."""
    from neuralzip import auto

    monkeypatch.setattr(codecs, "spec_available", lambda spec: True)
    monkeypatch.setattr(auto, "SAMPLE_MARGIN", 1e9)
    monkeypatch.setattr(auto, "SAMPLED_MARGIN", 1e9)
    image = PixelImage("RGB", smooth_image(auto.SAMPLE_SIDE + 8, auto.SAMPLE_SIDE + 40, 3, 4))
    local = tiny_codecs["local"]
    plain = local.estimate_bits
    monkeypatch.setattr(local, "estimate_bits", lambda img, target=None, adapt=True: (1.01 if adapt else 1.0) * plain(img, target, adapt))
    choice = auto.choose([image], names=["jxl", "local", "local-photo"])[0]
    assert "local-photo" in choice.sizes and "local" not in choice.sizes
    assert "local-photo" in choice.skipped["local"] and "from the same pixels" in choice.skipped["local"]


def test_estimates_prepared_during_the_first_encode_decide_as_those_made_after_it(tiny_codecs, monkeypatch):
    """The estimates computed while the reference codec encodes (in a thread) are the ones
    auto would compute after it: with and without that preparation, the same choice."""
    from neuralzip import auto

    monkeypatch.setattr(codecs, "spec_available", lambda spec: True)
    images = [PixelImage("RGB", smooth_image(auto.SAMPLE_SIDE + 8, auto.SAMPLE_SIDE + 40, 3, seed)) for seed in (4, 5)]
    names = ["jxl", "webp", "png", "local", "flow", "vae"]
    prepared = auto.choose(images, names=names)
    monkeypatch.setattr(auto._Estimator, "prefetch", lambda self, names: None)
    after = auto.choose(images, names=names)
    for a, b in zip(prepared, after):
        assert (a.codec, a.payload, a.sizes, a.skipped) == (b.codec, b.payload, b.sizes, b.skipped)
    assert any("from a sample" in why for why in prepared[0].skipped.values())  # estimates did decide


def test_fewer_threads_caps_this_thread_and_torch_and_restores_both(monkeypatch):
    """auto's estimates beside a running encoder use a core fewer: inside the block this
    thread's codecs and torch get one thread fewer (never under one), another thread keeps
    the full count, and both counts come back after, also after an error."""
    import threading

    import torch

    from neuralzip.threads import codec_threads, fewer_threads

    monkeypatch.setenv("NZIP_THREADS", "3")
    torch_before = torch.get_num_threads()
    seen = {}
    with pytest.raises(RuntimeError):
        with fewer_threads(1):
            seen["inside"], seen["torch"] = codec_threads(), torch.get_num_threads()
            other = threading.Thread(target=lambda: seen.setdefault("other", codec_threads()))
            other.start()
            other.join()
            with fewer_threads(5):
                seen["floor"] = codec_threads()
            seen["outer again"] = codec_threads()
            raise RuntimeError("an encoder failed")
    assert seen == {"inside": 2, "torch": 2, "other": 3, "floor": 1, "outer again": 2}
    assert codec_threads() == 3 and torch.get_num_threads() == torch_before
