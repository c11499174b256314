"""Where the bits go: per-pixel code lengths drawn beside the image.

A neural codec that can attribute its code length to locations implements
``pixel_bits(image) -> float [H, W]`` (bits per pixel, channels summed): for PixelCNN++ that
is exactly the cost of each pixel's binary decisions under the exact integer tables, so the
map sums to the payload size up to the coder's few bytes of overhead.
"""

from __future__ import annotations

import io

import numpy as np

from .images import PixelImage


class ExplainError(Exception):
    pass


def pixel_bits(codec, image: PixelImage) -> np.ndarray:
    if not hasattr(codec, "pixel_bits"):
        raise ExplainError(f"{codec.name} cannot attribute bits to pixels (use a neural model, e.g. -m pixelcnn)")
    codec.check(image)
    return codec.pixel_bits(image)


def render(image: PixelImage, bits: np.ndarray, title: str) -> bytes:
    """PNG bytes: the image and the heatmap of ``bits`` side by side, colour bar, total."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, w = bits.shape
    aspect = w / h
    fig, axes = plt.subplots(1, 2, figsize=(2 * 3.2 * aspect + 1.2, 3.6), dpi=150,
                             gridspec_kw={"width_ratios": [1, 1.08]})
    shown = image.pixels[:, :, 0] if image.channels == 1 else image.pixels[:, :, :3]
    axes[0].imshow(shown, cmap="gray" if image.channels == 1 else None, interpolation="nearest")
    axes[0].set_title("image", fontsize=9)
    heat = axes[1].imshow(bits, cmap="magma", interpolation="nearest")
    axes[1].set_title("code length per pixel", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    bar = fig.colorbar(heat, ax=axes[1], fraction=0.046, pad=0.04)
    bar.set_label("bits (all channels)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def summary(codec_name: str, bits: np.ndarray, image: PixelImage) -> str:
    total = float(bits.sum())
    return (f"{codec_name}: {total / 8:.0f} bytes of model code length (payload, before the coder's few bytes), "
            f"{total / image.subpixels:.3f} bits/sub-pixel, {image.width}x{image.height}")
