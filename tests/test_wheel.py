"""A wheel carries every shipped model: built from this checkout, installed into a fresh venv
(non-editable), it round-trips an image with every neural codec whose weights are shipped."""

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = r"""
import json, sys
import numpy as np
import neuralzip
from neuralzip import codecs
from neuralzip.images import PixelImage
from neuralzip.registry import models_dir
rng = np.random.default_rng(0)
y, x = np.mgrid[0:8, 0:8]
pixels = np.clip(np.stack([x * 20 + y * 5 + 40 * c for c in range(3)], -1) + rng.normal(0, 5, (8, 8, 3)), 0, 255).astype(np.uint8)
image = PixelImage("RGB", pixels)
done = {}
for spec in codecs.available_specs():
    if spec.kind != "neural":
        continue
    data = neuralzip.compress(image, model=spec.name)
    done[spec.name] = bool(np.array_equal(neuralzip.decompress(data).pixels, pixels))
print(json.dumps({"models_dir": str(models_dir()), "round_trips": done}))
"""


@pytest.mark.skipif(os.environ.get("NZIP_SKIP_WHEEL") == "1", reason="NZIP_SKIP_WHEEL=1")
def test_wheel_installs_weights_and_round_trips(tmp_path):
    shipped = sorted({p.name.rsplit("-v", 1)[0] for p in (ROOT / "models").glob("*-v*.safetensors")})
    assert shipped, "no shipped models in the checkout"
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
                   check=True, cwd=tmp_path)
    wheel = next(wheels.glob("neuralzip-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt"), str(wheel)],
                   check=True, cwd=tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("NZIP_MODELS", "PYTHONPATH")}
    out = subprocess.run([str(python), "-c", SCRIPT], check=True, cwd=tmp_path, env=env,
                         capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert Path(result["models_dir"]).is_relative_to(env_dir)  # the wheel's own copy, not the checkout
    assert set(result["round_trips"]) == set(shipped) and all(result["round_trips"].values()), result
    listing = subprocess.run([str(env_dir / "bin" / "nzip"), "models"], check=True, cwd=tmp_path, env=env,
                             capture_output=True, text=True).stdout
    measured = {c["name"]: c for c in json.loads((ROOT / "benchmarks" / "results" / "cifar10.json").read_text())["codecs"]}
    local_row = next(line for line in listing.splitlines() if line.startswith("local "))
    assert f"{measured['local']['bpd']:.3f}" in local_row, listing  # the committed rates travel with the wheel
