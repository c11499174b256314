"""Photographs to train on, from Debian's wallpaper packages (nothing is downloaded).

A model that only saw 32x32 thumbnails does not know how smooth full-resolution photographs
are. This module builds a training corpus from photographs that Debian packages install
(their licences, GPL-2+ and CC-BY-SA-3.0, are recorded per file in the corpus manifest):

    apt-get install mate-backgrounds plasma-workspace-wallpapers lomiri-wallpapers-16.04 \\
        lomiri-wallpapers-20.04
    python -m neuralzip.photoset OUT_DIR

Only files listed in :data:`PHOTOGRAPHS` are used (chosen by eye: photographs, not digital
renders). Each is reduced by an integer factor (box filter, at least 2x) so JPEG's block
artefacts mostly vanish and what is left has a photograph's statistics; the result is a PNG
in OUT_DIR with ``manifest.json``. Every fifth photograph (sorted by name) is held out for
testing. Standard test images (Kodak, scikit-image's samples) are never used here: they
are for measuring only. The corpus is built on each machine, never committed.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

# (package, path): photographs among the installed wallpapers (the package that installs each
# is looked up with dpkg when the corpus is built; the one named here is the expectation).
PHOTOGRAPHS = [
    ("lomiri-wallpapers-16.04", "/usr/share/backgrounds/Bridge_by_Sander_Klootwijk.jpg"),
    ("lomiri-wallpapers-16.04", "/usr/share/backgrounds/Dragonfly_by_Bolly.jpg"),
    ("lomiri-wallpapers-16.04", "/usr/share/backgrounds/Infinite-Sea_by_Aury88.jpg"),
    ("lomiri-wallpapers-16.04", "/usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg"),
    ("lomiri-wallpapers-16.04", "/usr/share/backgrounds/Picture_0B_by_freespace.jpg"),
    ("lomiri-wallpapers-16.04", "/usr/share/backgrounds/Picture_1A_by_freespace.jpg"),
    ("lomiri-wallpapers-16.04", "/usr/share/backgrounds/Wine_by_Jakkub_Mede.jpg"),
    ("lomiri-wallpapers-16.04", "/usr/share/backgrounds/aitzgorri_by_Aitzol_Berasategi.jpg"),
    ("lomiri-wallpapers-16.04", "/usr/share/backgrounds/analogpattern_by_Peter_Nerlich.jpg"),
    ("lomiri-wallpapers-16.04", "/usr/share/backgrounds/free_by_Peter_Nerlich.jpg"),
    ("lomiri-wallpapers-16.04", "/usr/share/backgrounds/friends_by_Aitzol_Berasategi.jpg"),
    ("lomiri-wallpapers-16.04", "/usr/share/backgrounds/life_by_Aitzol_Berasategi.jpg"),
    ("lomiri-wallpapers-16.04", "/usr/share/backgrounds/picosdeeuropa_by_Aitzol_Berasategi.jpg"),
    ("lomiri-wallpapers-16.04", "/usr/share/backgrounds/seeding_by_Clements_Engelhardt.jpg"),
    ("lomiri-wallpapers-16.04", "/usr/share/backgrounds/sunset_by_Aitzol_Berasategi.jpg"),
    ("mate-backgrounds", "/usr/share/backgrounds/mate/nature/Aqua.jpg"),
    ("mate-backgrounds", "/usr/share/backgrounds/mate/nature/Blinds.jpg"),
    ("mate-backgrounds", "/usr/share/backgrounds/mate/nature/Dune.jpg"),
    ("mate-backgrounds", "/usr/share/backgrounds/mate/nature/FreshFlower.jpg"),
    ("mate-backgrounds", "/usr/share/backgrounds/mate/nature/Garden.jpg"),
    ("mate-backgrounds", "/usr/share/backgrounds/mate/nature/GreenMeadow.jpg"),
    ("mate-backgrounds", "/usr/share/backgrounds/mate/nature/LadyBird.jpg"),
    ("mate-backgrounds", "/usr/share/backgrounds/mate/nature/RainDrops.jpg"),
    ("mate-backgrounds", "/usr/share/backgrounds/mate/nature/Storm.jpg"),
    ("mate-backgrounds", "/usr/share/backgrounds/mate/nature/TwoWings.jpg"),
    ("mate-backgrounds", "/usr/share/backgrounds/mate/nature/Wood.jpg"),
    ("mate-backgrounds", "/usr/share/backgrounds/mate/nature/YellowFlower.jpg"),
    ("plasma-workspace-wallpapers", "/usr/share/wallpapers/BytheWater/contents/images/2560x1600.jpg"),
    ("plasma-workspace-wallpapers", "/usr/share/wallpapers/DarkestHour/contents/images/2560x1600.jpg"),
    ("plasma-workspace-wallpapers", "/usr/share/wallpapers/EveningGlow/contents/images/2560x1600.jpg"),
    ("plasma-workspace-wallpapers", "/usr/share/wallpapers/FallenLeaf/contents/images/2560x1600.jpg"),
    ("plasma-workspace-wallpapers", "/usr/share/wallpapers/Kite/contents/images/2560x1600.jpg"),
    ("plasma-workspace-wallpapers", "/usr/share/wallpapers/OneStandsOut/contents/images/2560x1600.jpg"),
    ("plasma-workspace-wallpapers", "/usr/share/wallpapers/Path/contents/images/2560x1600.jpg"),
    ("plasma-workspace-wallpapers", "/usr/share/wallpapers/summer_1am/contents/images/2560x1600.jpg"),
    ("plasma-workspace-wallpapers", "/usr/share/wallpapers/ColorfulCups/contents/images/2560x1600.jpg"),
]
LONGEST_SIDE = 1600  # after reduction (and at least 2x)
TEST_EVERY = 5


def _owner(path: Path, expected: str) -> str:
    """The Debian package that installed ``path`` (dpkg), else ``expected``."""
    import subprocess

    try:
        found = subprocess.run(["dpkg", "-S", str(path)], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return expected
    return found.split(":", 1)[0].strip() if ":" in found else expected


def _licence(package: str) -> str:
    path = Path("/usr/share/doc") / package / "copyright"
    if not path.is_file():
        return "unknown"
    licences = sorted({line.split(":", 1)[1].strip() for line in path.read_text(errors="replace").splitlines()
                       if line.startswith("License:")})
    return ", ".join(licences)


def build(out: Path) -> dict:
    """Reduce every installed photograph of :data:`PHOTOGRAPHS` into ``out``; returns the manifest."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for package, source in PHOTOGRAPHS:
        path = Path(source)
        if not path.is_file():
            continue
        package = _owner(path, package)
        with Image.open(path) as image:
            image = image.convert("RGB")
            factor = max(2, math.ceil(max(image.size) / LONGEST_SIDE))
            reduced = image.reduce(factor)
        name = f"{path.parent.parent.parent.name if 'contents' in path.parts else path.stem}.png"
        reduced.save(out / name)
        entries.append({"file": name, "source": source, "package": package, "licence": _licence(package),
                        "reduced": factor, "size": list(reduced.size)})
    entries.sort(key=lambda e: e["file"])
    for i, entry in enumerate(entries):
        entry["split"] = "test" if i % TEST_EVERY == TEST_EVERY - 1 else "train"
    manifest = {"photographs": entries, "note": __doc__.split("\n\n")[1].replace("\n", " ")}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def load_photos(folder: Path, split: str) -> list[np.ndarray]:
    """The corpus photographs of ``split`` ("train" or "test") as uint8 arrays [H, W, 3]."""
    from PIL import Image

    folder = Path(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    return [np.asarray(Image.open(folder / e["file"]).convert("RGB")) for e in manifest["photographs"]
            if e["split"] == split]


def random_crops(photos: list[np.ndarray], count: int, side: int = 32, seed: int = 0) -> np.ndarray:
    """``count`` crops side x side (uint8 [count, side, side, 3]), photographs drawn in
    proportion to their area, positions uniform; deterministic for a seed."""
    rng = np.random.default_rng(seed)
    areas = np.array([p.shape[0] * p.shape[1] for p in photos], dtype=np.float64)
    which = rng.choice(len(photos), size=count, p=areas / areas.sum())
    out = np.empty((count, side, side, 3), dtype=np.uint8)
    for i, k in enumerate(which):
        h, w, _ = photos[k].shape
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        out[i] = photos[k][y : y + side, x : x + side]
    return out


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m neuralzip.photoset OUT_DIR", file=sys.stderr)
        return 2
    manifest = build(Path(args[0]))
    counts = {s: sum(e["split"] == s for e in manifest["photographs"]) for s in ("train", "test")}
    print(f"{len(manifest['photographs'])} photographs ({counts['train']} train, {counts['test']} test) in {args[0]}")
    return 0 if manifest["photographs"] else 1


if __name__ == "__main__":
    sys.exit(main())
