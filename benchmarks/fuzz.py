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
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from neuralzip import codecs as codec_table
from neuralzip.fuzz import MUTATIONS, fuzz, make_seeds, mutate

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def cli_cases(codec_names: list[str], count: int, seed: int) -> dict:
    rng = np.random.default_rng(np.append(np.atleast_1d(seed), 1))  # apart from the decoder cases
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


def _shard(names: list[str], cases: int, cli: int, seed) -> tuple[dict, dict | None]:
    """One process's share: (fuzz report, command-line outcome) as plain dicts."""
    torch.set_num_threads(1)
    return fuzz(names, cases, seed).to_dict(), (cli_cases(names, cli, seed) if cli else None)


def _merged(reports: list[dict], seconds: float) -> dict:
    """The shards' reports as one (counts summed, failures listed)."""
    outcomes, by_codec, by_mutation = Counter(), defaultdict(Counter), defaultdict(Counter)
    for report in reports:
        outcomes.update(report["outcomes"])
        for key, counts in report["by_codec"].items():
            by_codec[key].update(counts)
        for key, counts in report["by_mutation"].items():
            by_mutation[key].update(counts)
    return {"cases": sum(r["cases"] for r in reports), "outcomes": dict(outcomes), "bad": sum(r["bad"] for r in reports),
            "seconds": round(seconds, 1), "by_codec": {k: dict(v) for k, v in by_codec.items()},
            "by_mutation": {k: dict(v) for k, v in by_mutation.items()},
            "failures": [f for r in reports for f in r["failures"]]}


def _merged_cli(outcomes: list[dict | None]) -> dict:
    parts = [o for o in outcomes if o]
    return {"cases": sum(o["cases"] for o in parts), "clean": sum(o["clean"] for o in parts),
            "decoded": sum(o["decoded"] for o in parts), "problems": [p for o in parts for p in o["problems"]]}


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
    parser.add_argument("--jobs", type=int, default=1, help="processes, each fuzzing its share of the cases (one per core)")
    args = parser.parse_args(argv)
    names = args.codecs.split(",") if args.codecs else [s.name for s in codec_table.available_specs()]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    commit = _commit()  # before any result is written
    began = time.time()
    # Shard j fuzzes its share of the cases with seed (seed, j): independent processes, one
    # per core, merged into one report (a shard's cases are as random as one long run's).
    shares = [(args.cases * (j + 1)) // args.jobs - (args.cases * j) // args.jobs for j in range(args.jobs)]
    cli_shares = [(args.cli * (j + 1)) // args.jobs - (args.cli * j) // args.jobs for j in range(args.jobs)]
    jobs = [(names, shares[j], cli_shares[j], args.seed if args.jobs == 1 else [args.seed, j]) for j in range(args.jobs)]
    if args.jobs == 1:
        parts = [_shard(*jobs[0])]
    else:
        with ProcessPoolExecutor(args.jobs) as pool:
            parts = list(pool.map(_shard, *zip(*jobs)))
    report = _merged([part[0] for part in parts], time.time() - began)
    cli = _merged_cli([part[1] for part in parts]) if args.cli else None
    document = {"started": started, "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "codecs": names, "seed": args.seed, "jobs": args.jobs, **report, "cli": cli}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fuzz.json").write_text(json.dumps(document, indent=1) + "\n")
    lines = [f"# Decoder fuzzing: {report['cases']} cases, {report['bad']} crashes/hangs/wrong outputs\n",
             f"Run {started} to {document['finished']} by `python benchmarks/fuzz.py {' '.join(argv if argv is not None else sys.argv[1:])}` "
             f"(seed {args.seed}; codecs {', '.join(names)}; commit {commit}), {report['seconds'] / 60:.0f} min.\n",
             "| codec | cases | clean error | exact image | wrong | crash | hang |", "|---|---:|---:|---:|---:|---:|---:|"]
    for codec, counts in sorted(report["by_codec"].items()):
        counts = Counter(counts)
        lines.append(f"| {codec} | {sum(counts.values())} | {counts['error']} | {counts['exact']} | "
                     f"{counts['wrong']} | {counts['crash']} | {counts['hang']} |")
    lines += ["", "| mutation | cases | clean error | exact image | bad |", "|---|---:|---:|---:|---:|"]
    for kind, counts in sorted(report["by_mutation"].items()):
        counts = Counter(counts)
        lines.append(f"| {kind} | {sum(counts.values())} | {counts['error']} | {counts['exact']} | "
                     f"{counts['wrong'] + counts['crash'] + counts['hang']} |")
    if cli:
        lines += ["", f"Through the command line: {cli['cases']} cases, {cli['clean']} clean one-line errors "
                      f"(exit 1, no output left), {cli['decoded']} decoded, {len(cli['problems'])} problems."]
    (args.out / "fuzz.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if report["bad"] == 0 and not (cli and cli["problems"]) else 1


if __name__ == "__main__":
    sys.exit(main())
