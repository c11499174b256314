"""What shipping every model version costs: builds a wheel of this checkout and reports its
size, the models' share and each weights file, to benchmarks/results/package_size.{json,md}.

    python benchmarks/package_size.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp, str(ROOT)], check=True)
        wheel = next(Path(tmp).glob("neuralzip-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            members = archive.infolist()
        weights = {Path(m.filename).name: {"bytes": m.file_size, "compressed": m.compress_size}
                   for m in members if "/models/" in m.filename and m.filename.endswith(".safetensors")}
        result = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                     cwd=ROOT).stdout.strip(),
            "wheel": wheel.name, "wheel_bytes": wheel.stat().st_size,
            "unpacked_bytes": sum(m.file_size for m in members),
            "models_bytes": sum(m.file_size for m in members if "/models/" in m.filename),
            "weights": weights,
        }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "package_size.json").write_text(json.dumps(result, indent=1) + "\n")
    mb = lambda n: f"{n / 1e6:.2f}"  # noqa: E731
    lines = ["# Package size: every shipped model version in the wheel", "",
             f"`python benchmarks/package_size.py` on {result['date']} (commit {result['commit']}): "
             f"`{result['wheel']}` is {mb(result['wheel_bytes'])} MB ({mb(result['unpacked_bytes'])} MB unpacked, "
             f"of which models {mb(result['models_bytes'])} MB).", "",
             "| weights | MB | MB in the wheel (deflated) |", "|---|---:|---:|"]
    lines += [f"| {name} | {mb(w['bytes'])} | {mb(w['compressed'])} |" for name, w in sorted(weights.items())]
    (RESULTS / "package_size.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
