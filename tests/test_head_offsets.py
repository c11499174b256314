"""Per-image head offsets of the local codec: the block, exact round trips, when they are used."""

import numpy as np
import pytest

from neuralzip.codecs import head_offsets
from neuralzip.codecs.base import ImageShape, PayloadError
from neuralzip.codecs.local import LocalCodec
from neuralzip.exact.local import HEAD_LIMIT
from neuralzip.images import PixelImage

from .conftest import smooth_image

SIDE = 128  # 128 x 128 = MIN_PIXELS: the smallest images that carry the block


def _shape(image: PixelImage) -> ImageShape:
    return ImageShape(image.mode, image.width, image.height)


@pytest.fixture(scope="module")
def adaptive(tiny_local):
    """The tiny local codec as a model version whose card enables head offsets."""
    return LocalCodec(tiny_local.config, tiny_local.network, tiny_local.model_hash,
                      card={"coding": {"head_offsets": True}})


def test_block_round_trips_and_refuses_wrong_counts_ranges_and_truncation():
    units = np.array([0, 1, -1, 63, -64, head_offsets.UNIT_LIMIT, -head_offsets.UNIT_LIMIT], dtype=np.int64)
    block = head_offsets.encode_block(units)
    back, pos = head_offsets.decode_block(block + b"rest", 0, len(units), "local")
    assert np.array_equal(back, units) and pos == len(block)
    assert head_offsets.decode_block(head_offsets.encode_block(None), 0, len(units), "local") == (None, 1)
    with pytest.raises(PayloadError, match="head offsets for a head of"):
        head_offsets.decode_block(block, 0, len(units) + 1, "local")
    with pytest.raises(PayloadError):
        head_offsets.decode_block(block[:-1], 0, len(units), "local")
    beyond = head_offsets.encode_block(np.array([head_offsets.UNIT_LIMIT + 1], dtype=np.int64))
    with pytest.raises(PayloadError, match="beyond the head's range"):
        head_offsets.decode_block(beyond, 0, 1, "local")


def test_offsets_are_clipped_to_the_heads_range():
    head = np.array([[HEAD_LIMIT - 3, -HEAD_LIMIT + 3, 0]], dtype=np.int64)
    assert head_offsets.apply(head, np.array([10, -10, 5])).tolist() == [[HEAD_LIMIT, -HEAD_LIMIT, 5]]


def test_large_images_round_trip_exactly_with_offsets_that_save_bits(adaptive, tiny_local, monkeypatch):
    images = [PixelImage("RGB", smooth_image(SIDE, SIDE, seed=1)),
              PixelImage("L", smooth_image(SIDE + 3, SIDE, 1, seed=2)),
              PixelImage("RGBA", smooth_image(SIDE, SIDE + 5, 4, seed=3))]
    monkeypatch.setenv("NZIP_THREADS", "1")
    encoded = adaptive.encode(images)
    monkeypatch.setenv("NZIP_THREADS", "2")
    assert adaptive.encode(images).payloads == encoded.payloads  # the fit does not depend on the threads
    plain = tiny_local.encode(images).payloads
    for image, payload, before in zip(images, encoded.payloads, plain):
        # the untrained tiny model is far from any image: fitted offsets always pay here
        assert len(payload) < 0.97 * len(before), (image.mode, len(payload), len(before))
    shapes = [_shape(im) for im in images]
    decoded = adaptive.decode(encoded.payloads[::-1], shapes[::-1])  # another order and batch
    for original, image in zip(images[::-1], decoded):
        assert image.mode == original.mode and np.array_equal(image.pixels, original.pixels)
    monkeypatch.setenv("NZIP_THREADS", "1")
    one = adaptive.decode(encoded.payloads[:1], shapes[:1])[0]
    assert np.array_equal(one.pixels, images[0].pixels)


def test_offsets_only_with_a_model_that_enables_them_and_a_large_image(adaptive, tiny_local):
    small = PixelImage("RGB", smooth_image(SIDE - 1, SIDE, seed=4))
    assert not head_offsets.carries_block(small.height, small.width)
    assert adaptive.encode([small]).payloads == tiny_local.encode([small]).payloads
    large = PixelImage("RGB", smooth_image(SIDE, SIDE, seed=5))
    payload = tiny_local.encode([large]).payloads[0]  # no block: the streams start at once
    assert np.array_equal(tiny_local.decode([payload], [_shape(large)])[0].pixels, large.pixels)
    # the same bytes read by a version with offsets: its block would be misread, never a wrong image
    result = adaptive.decode_each([payload], [_shape(large)])[0]
    assert isinstance(result, PayloadError) or not np.array_equal(result.pixels, large.pixels)


def test_a_damaged_block_fails_cleanly(adaptive):
    image = PixelImage("RGB", smooth_image(SIDE, SIDE, seed=6))
    payload = adaptive.encode([image]).payloads[0]
    assert payload[0] == adaptive.mixture.layout.size  # the block's count: offsets were kept
    shape = _shape(image)
    for damaged in (payload[:1] + bytes([payload[1] ^ 0x02]) + payload[2:], bytes([7]) + payload[1:], payload[:40]):
        result = adaptive.decode_each([damaged], [shape])[0]
        assert isinstance(result, PayloadError) or not np.array_equal(result.pixels, image.pixels)


def test_estimate_includes_the_offsets_the_encoder_will_fit(adaptive, tiny_local):
    image = PixelImage("RGB", smooth_image(SIDE + 20, SIDE + 40, seed=7))
    payload = adaptive.encode([image]).payloads[0]
    adapted, plain = adaptive.estimate_bits(image), tiny_local.estimate_bits(image)
    assert abs(adapted - 8 * len(payload)) < 0.05 * 8 * len(payload)
    assert adapted < 0.97 * plain
    # far above a target, the estimate skips the fit: it is the unadapted one
    assert adaptive.estimate_bits(image, target=plain / 2) == plain


@pytest.mark.parametrize("channels", [3, 1])
def test_numpy_likelihood_is_the_torch_one_and_its_gradient_is_exact(channels):
    """The encoder's fit uses a numpy twin of the training likelihood: the same values as
    torch's (which computes in float32) in every branch (edge bins, underflowing bins,
    clamped log-scales), a gradient equal to autograd's within float32 precision, and to
    central differences of its own values within float64 precision."""
    import torch

    from neuralzip.distributions import MixtureLayout, mixture_log_likelihood, mixture_log_likelihood_and_gradient

    rng = np.random.default_rng(channels)
    layout, n = MixtureLayout(channels, 4), 600
    k, c = layout.mixtures, channels
    params = rng.normal(0, 2, (n, layout.size))
    params[:40, k + c * k : k + 2 * c * k] = -9.0  # log-scales below the clamp
    params[40:80, k + c * k : k + 2 * c * k] = -6.5  # narrow logistics far from x: underflowing bins
    values = rng.integers(0, 256, (n, c))
    values[80:120], values[120:160] = 0, 255  # the two edge bins
    x = values * (2.0 / 255.0) - 1.0
    value, gradient = mixture_log_likelihood_and_gradient(params, x, layout)
    tensor = torch.tensor(params, requires_grad=True)
    reference = mixture_log_likelihood(tensor.T.reshape(1, -1, n, 1), torch.tensor(x).T.reshape(1, c, n, 1), layout)
    reference.sum().backward()
    np.testing.assert_allclose(value, reference.detach().numpy().ravel(), rtol=2e-3, atol=2e-3)
    scale = np.abs(gradient).max()
    np.testing.assert_allclose(gradient, tensor.grad.numpy(), rtol=1e-2, atol=1e-4 * scale)
    step = 1e-6
    for column in range(layout.size):
        shift = np.zeros_like(params)
        shift[:, column] = step
        numeric = (mixture_log_likelihood_and_gradient(params + shift, x, layout)[0]
                   - mixture_log_likelihood_and_gradient(params - shift, x, layout)[0]) / (2 * step)
        np.testing.assert_allclose(gradient[:, column], numeric, rtol=1e-4, atol=1e-4)


def test_encoding_with_head_offsets_imports_no_torch(tmp_path):
    """A local file of a large image (head offsets fitted) is written and read back without
    importing torch (~1.5 s, and its optimiser another ~1.5: more than the encode itself)."""
    import subprocess
    import sys

    pixels = smooth_image(SIDE, SIDE, seed=4)
    np.save(tmp_path / "pixels.npy", pixels)
    script = (
        "import sys, numpy as np\n"
        "from neuralzip import api\n"
        "from neuralzip.codecs import head_offsets\n"
        "fits, fit = [], head_offsets.fit\n"
        "head_offsets.fit = lambda *args: fits.append(1) or fit(*args)\n"
        f"pixels = np.load({str(tmp_path / 'pixels.npy')!r})\n"
        "data = api.compress(pixels, model='local-photo')\n"
        "assert fits and np.array_equal(api.decompress(data).pixels, pixels)\n"
        "print('torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
