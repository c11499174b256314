"""Write golden vectors: .nzip files and the pixels they must decode to.

Vectors are written ONCE, by the nzip that first ships a codec, model version or format
feature, and never regenerated: a later change that breaks one has broken the promise that
files decode forever. Run with the neuralzip to be pinned on the path::

    python tests/vectors/make_vectors.py OUT_DIR [--only NAME ...] [--cifar PATH]

It refuses to overwrite an existing vector. Each vector is ``NAME.nzip`` plus
``NAME.npz`` (per image: name, mode, pixels; palettes too), listed in ``manifest.json``
with the commit and codec that made it. ``tests/test_vectors.py`` decodes them all.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np


def synthetic(kind: str, h: int, w: int, seed: int) -> np.ndarray:
    """Images with structure (gradients and noise), so that models see something like images."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = (np.sin(x / 3.0 + seed) * 60 + np.cos(y / 4.0) * 50 + 128)[:, :, None]
    channels = {"RGB": 3, "L": 1, "RGBA": 4, "LA": 2}[kind]
    noise = rng.normal(0, 12, (h, w, channels))
    shift = np.arange(channels)[None, None, :] * 25
    return np.clip(base + shift + noise, 0, 255).astype(np.uint8)


def cifar_images(path: str | None, count: int) -> list[np.ndarray]:
    if path is None:
        return [synthetic("RGB", 32, 32, 100 + i) for i in range(count)]
    from neuralzip.data import load_cifar10

    test = load_cifar10("test", path).images
    return [test[i * 997 % len(test)] for i in range(count)]


def cases(cifar: list[np.ndarray]):
    """(vector name, codec, [(entry name, PixelImage)], archive?)."""
    from neuralzip.images import PixelImage

    rgb = PixelImage("RGB", cifar[0])
    odd = PixelImage("RGB", synthetic("RGB", 7, 13, 1))
    grey = PixelImage("L", synthetic("L", 9, 11, 2))
    rgba = PixelImage("RGBA", synthetic("RGBA", 8, 10, 3))
    la = PixelImage("LA", synthetic("LA", 6, 5, 4))
    wide = PixelImage("I;16", (synthetic("L", 6, 7, 5).astype(np.uint16) * 257 + 3))
    wide_rgb = PixelImage("RGB;16", (synthetic("RGB", 5, 6, 6).astype(np.uint16) * 251 + 7))
    out = []
    for codec in ("png", "webp", "jxl", "j2k"):
        for label, image in [("rgb", rgb), ("odd", odd), ("grey", grey), ("rgba", rgba), ("la", la),
                             ("i16", wide), ("rgb16", wide_rgb)]:
            if codec == "webp" and label in ("i16", "rgb16"):
                continue
            out.append((f"{codec}-{label}", codec, [("", image)], False))
        out.append((f"{codec}-archive", codec, [("a.png", rgb), ("b/c.png", odd), ("d.png", grey)], True))
    out += format_feature_cases()
    return out, rgb, odd, grey, rgba


def format_feature_cases():
    """Metadata (format version 2) and JPEG files kept as files (codec 5)."""
    import io
    import struct
    import zlib

    from PIL import Image

    from neuralzip.images import decode_image_bytes
    from neuralzip.metadata import splice

    def png(pixels, extra):
        if pixels.dtype == np.uint16:
            import imagecodecs

            data = bytes(imagecodecs.png_encode(pixels if pixels.shape[2] > 1 else pixels[:, :, 0]))
        else:
            buffer = io.BytesIO()
            Image.fromarray(pixels if pixels.shape[2] > 1 else pixels[:, :, 0]).save(buffer, "PNG")
            data = buffer.getvalue()
        return decode_image_bytes(splice(data, extra))

    extra = ((b"iCCP", b"icc\x00\x00" + zlib.compress(b"profile" * 30)), (b"gAMA", struct.pack(">I", 45455)),
             (b"pHYs", struct.pack(">IIB", 2835, 2835, 1)), (b"tEXt", b"Title\x00golden"),
             (b"eXIf", b"MM\x00*\x00\x00\x00\x08\x00\x00"))
    with_meta = png(synthetic("RGB", 6, 9, 11), extra + ((b"tRNS", struct.pack(">HHH", 1, 2, 3)),))
    wide_key = png(synthetic("L", 5, 7, 12).astype(np.uint16) * 257, ((b"tRNS", struct.pack(">H", 514)),))
    jpegs = []
    for i, (kind, h, w) in enumerate([("RGB", 24, 40), ("L", 17, 9)]):
        pixels = synthetic(kind, h, w, 20 + i)
        buffer = io.BytesIO()
        Image.fromarray(pixels if kind == "RGB" else pixels[:, :, 0]).save(buffer, "JPEG", quality=88, comment=b"golden")
        jpegs.append(decode_image_bytes(buffer.getvalue()))
    return [("png-metadata", "png", [("", with_meta)], False), ("jxl-metadata", "jxl", [("", with_meta)], False),
            ("png-i16-trns", "png", [("", wide_key)], False),
            ("png-metadata-archive", "png", [("m.png", with_meta), ("k.png", wide_key)], True),
            ("jpeg-rgb", "jpeg", [("", jpegs[0])], False), ("jpeg-grey", "jpeg", [("", jpegs[1])], False),
            ("jpeg-archive", "jpeg", [("a.jpg", jpegs[0]), ("b.jpg", jpegs[1])], True)]


def neural_cases(codec: str, cifar, odd, grey, rgba):
    """Vectors of a neural codec (kept small: CI decodes every one)."""
    from neuralzip.images import PixelImage

    if codec == "pixelcnn":  # slow to decode: small images only
        small = PixelImage("RGB", np.ascontiguousarray(cifar[0][:8, :8]))
        return [(f"{codec}-rgb8", codec, [("", small)], False), (f"{codec}-odd", codec, [("", odd)], False),
                (f"{codec}-grey", codec, [("", grey)], False)]
    items = [(f"{codec}-cifar", codec, [("", PixelImage("RGB", cifar[0]))], False)]
    if codec == "vae":
        archive = [(f"img{i}.png", PixelImage("RGB", im)) for i, im in enumerate(cifar[:4])]
        return items + [(f"{codec}-archive", codec, archive, True)]
    if codec != "flow":
        items += [(f"{codec}-grey", codec, [("", grey)], False), (f"{codec}-rgba", codec, [("", rgba)], False)]
    if codec in ("local", "local-photo"):  # large enough to carry head offsets (versions that enable them)
        large = PixelImage("RGB", synthetic("RGB", 128, 128, 7))
        items.append((f"{codec}-large", codec, [("", large)], False))
    items += [(f"{codec}-odd", codec, [("", odd)], False),
              (f"{codec}-archive", codec, [(f"img{i}.png", PixelImage("RGB", im)) for i, im in enumerate(cifar[:3])], True)]
    return items


def main(argv=None) -> int:
    import neuralzip
    from neuralzip import codecs as codec_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--only", nargs="*", help="codecs to write vectors for (default: every installed one)")
    parser.add_argument("--cifar", help="CIFAR-10 folder (else synthetic 32x32 images)")
    parser.add_argument("--tag", default="", help="suffix for vector names (a new model version)")
    parser.add_argument("--singles", action="store_true", help="single-image files only (a new single-file format)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    cifar = cifar_images(args.cifar, 4)
    classical, _, odd, grey, rgba = cases(cifar)
    todo = [case for case in classical if case[1] in codec_table.BY_NAME]
    for spec in codec_table.available_specs():
        if spec.kind == "neural":
            todo += neural_cases(spec.name, cifar, odd, grey, rgba)
    if args.only:
        todo = [case for case in todo if case[1] in args.only]
    if args.singles:
        todo = [case for case in todo if not case[3]]
    repo = Path(neuralzip.__file__).resolve().parent.parent
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    for name, codec, items, archive in todo:
        name = name + args.tag
        if name in manifest or (args.out / f"{name}.nzip").exists():
            print(f"{name}: exists, kept (vectors are never regenerated)")
            continue
        images = [image for _, image in items]
        if archive:
            data = neuralzip.compress_archive(images, [n for n, _ in items], model=codec).data
        else:
            data = neuralzip.compress(images[0], model=codec)
        # check before pinning: a vector must decode with the code that wrote it
        decoded = neuralzip.decompress_all(data)
        assert all(np.array_equal(a.pixels, b.pixels) for (_, a), b in zip(decoded, images))
        assert all(a.original == b.original for (_, a), b in zip(decoded, images))
        (args.out / f"{name}.nzip").write_bytes(data)
        arrays = {}
        for i, (entry, image) in enumerate(items):
            arrays[f"pixels{i}"] = image.pixels
            if image.palette is not None:
                arrays[f"palette{i}"] = np.frombuffer(image.palette, np.uint8)
            if getattr(image, "metadata", ()):
                from neuralzip.metadata import serialize

                arrays[f"metadata{i}"] = np.frombuffer(serialize(image.metadata), np.uint8)
            if getattr(image, "original", None) is not None:
                arrays[f"original{i}"] = np.frombuffer(image.original, np.uint8)
        np.savez(args.out / f"{name}.npz", **arrays)
        info = neuralzip.info(data)
        manifest[name] = {"codec": codec, "codec_id": info["codec_id"], "model_hash": info["model_hash"],
                          "archive": archive, "images": [{"name": n, "mode": im.mode} for n, im in items],
                          "bytes": len(data), "commit": commit}
        print(f"{name}: {len(data)} bytes")
    manifest_path.write_text(json.dumps(dict(sorted(manifest.items())), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
