"""Fuzz the decoders of every codec; write benchmarks/results/fuzz.{json,md}.

    python benchmarks/fuzz.py [--cases 100000] [--codecs png,webp,jxl,j2k,pixelcnn] [--cli 300]

In-process cases (see neuralzip/fuzz.py) check that every random or mutated file ends in a
clean error or the exact original image, within a time limit and a pixel limit. ``--cli N``
also runs N cases through the real ``nzip decompress`` in a subprocess and checks the exit
code (0 or 1), a one-line message without traceback, and that no output or temporary file is
left behind by a failed decode.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from neuralzip import codecs as codec_table
from neuralzip.fuzz import MUTATIONS, fuzz, make_seeds, mutate

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def cli_cases(codec_names: list[str], count: int, seed: int) -> dict:
    rng = np.random.default_rng(seed + 1)
    seeds = make_seeds(codec_names, rng)
    outcome = {"cases": 0, "clean": 0, "decoded": 0, "problems": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for i in range(count):
            s = seeds[int(rng.integers(0, len(seeds)))]
            data = mutate(seeds, s, MUTATIONS[int(rng.integers(0, len(MUTATIONS)))], rng)
            case = work / f"case{i}.nzip"
            case.write_bytes(data)
            target = work / f"out{i}"
            result = subprocess.run([sys.executable, "-m", "neuralzip.cli", "decompress", str(case), "-o", str(target)],
                                    capture_output=True, timeout=600)
            outcome["cases"] += 1
            err = result.stderr.decode(errors="replace")
            leftovers = [p.name for p in work.iterdir() if p.name.endswith(".part")]
            if result.returncode == 0:
                outcome["decoded"] += 1
            elif result.returncode == 1 and "Traceback" not in err and err.count("\n") <= 1 and not target.exists():
                outcome["clean"] += 1
            else:
                outcome["problems"].append({"case": i, "code": result.returncode, "stderr": err[-300:]})
            if leftovers:
                outcome["problems"].append({"case": i, "leftover": leftovers})
            case.unlink()
            if target.is_dir():
                for f in target.iterdir():
                    f.unlink()
                target.rmdir()
            elif target.exists():
                target.unlink()
    return outcome


def _commit() -> str:
    """The checked-out commit (with "+changes" if the tree differs), so a run names its code."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
        return head + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--codecs", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cli", type=int, default=300, help="cases run through the nzip command line")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = args.codecs.split(",") if args.codecs else [s.name for s in codec_table.available_specs()]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    report = fuzz(names, args.cases, args.seed)
    cli = cli_cases(names, args.cli, args.seed) if args.cli else None
    document = {"started": started, "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "codecs": names, "seed": args.seed, **report.to_dict(), "cli": cli}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fuzz.json").write_text(json.dumps(document, indent=1) + "\n")
    lines = [f"# Decoder fuzzing: {report.cases} cases, {report.bad} crashes/hangs/wrong outputs\n",
             f"Run {started} to {document['finished']} by `python benchmarks/fuzz.py {' '.join(argv if argv is not None else sys.argv[1:])}` "
             f"(seed {args.seed}; codecs {', '.join(names)}; commit {_commit()}), {report.seconds / 60:.0f} min.\n",
             "| codec | cases | clean error | exact image | wrong | crash | hang |", "|---|---:|---:|---:|---:|---:|---:|"]
    for codec, counts in sorted(report.by_codec.items()):
        lines.append(f"| {codec} | {sum(counts.values())} | {counts['error']} | {counts['exact']} | "
                     f"{counts['wrong']} | {counts['crash']} | {counts['hang']} |")
    lines += ["", "| mutation | cases | clean error | exact image | bad |", "|---|---:|---:|---:|---:|"]
    for kind, counts in sorted(report.by_mutation.items()):
        lines.append(f"| {kind} | {sum(counts.values())} | {counts['error']} | {counts['exact']} | "
                     f"{counts['wrong'] + counts['crash'] + counts['hang']} |")
    if cli:
        lines += ["", f"Through the command line: {cli['cases']} cases, {cli['clean']} clean one-line errors "
                      f"(exit 1, no output left), {cli['decoded']} decoded, {len(cli['problems'])} problems."]
    (args.out / "fuzz.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if report.bad == 0 and not (cli and cli["problems"]) else 1


if __name__ == "__main__":
    sys.exit(main())
