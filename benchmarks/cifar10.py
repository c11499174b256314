"""CIFAR-10 test-set benchmark of every codec (classical and neural), in one run.

    python benchmarks/cifar10.py [--codecs png,webp,jxl,j2k,pixelcnn] [--n N] [--data PATH]

Writes ``benchmarks/results/cifar10.json`` (shape: {"codecs": [{"name", "images", "exact",
"bpd", "nll_bpd", "encode_img_per_s", "decode_img_per_s", ...}], ...}), ``cifar10.md`` and
``cifar10.png`` (bpd against decode throughput). ``--n`` below 10,000 draws a class-spread
subset (fixed seed) and writes ``cifar10-subset.*`` instead, so a quick run never replaces the
full results. ``--update`` re-runs only the codecs named and keeps the other committed rows;
every run is listed in the results with its command and note.
"""

from __future__ import annotations

import argparse
import os
import json
import sys
import time
from pathlib import Path

import torch

from neuralzip import codecs as codec_table
from neuralzip.bench import CodecResult, markdown_table, plot, run_archive, run_codec, write_results
from neuralzip.data import load_cifar10, spread_subset
from neuralzip.images import PixelImage

RESULTS = Path(__file__).resolve().parent / "results"


def write_report(path_json: Path) -> None:
    """``.md`` and ``.png`` beside results ``path_json``, rendered from it alone."""
    document = json.loads(path_json.read_text())
    results = [CodecResult(**row) for row in document["codecs"]]
    runs = document.get("runs") or [{key: document.get(key) for key in ("started", "finished", "command")}]
    history = "\n".join(f"* {r['started']} to {r['finished']}: `{r['command']}` ({', '.join(r.get('codecs') or ['every codec'])}"
                        f"{', ' + str(r['torch_threads']) + ' torch threads' if r.get('torch_threads') else ''}"
                        f"{', batches of ' + str(r['batch']) if r.get('batch') else ''})"
                        f"{'. ' + r['note'] if r.get('note') else ''}" for r in runs)
    images = document["images"]
    header = (f"# CIFAR-10 benchmark ({images} test images{', class-spread subset' if document.get('subset') else ''})\n\n"
              f"On this project's 2-core CPU machine. Runs (a later run replaces the rows of the codecs it names):"
              f"\n\n{history}\n\n"
              "bpd: bits per sub-pixel from real bytes: the .nzip file for neural codecs, the codec's own "
              "file for classical ones (bpd (.nzip) adds nzip's container to those). NLL bpd: the model's "
              "ideal code length under its exact integer tables (for the bits-back VAE: what each image adds to "
              "the ANS stack, i.e. the exact one-sample negative ELBO; a single file pays the initial bits on top). "
              "payload bpd: the entropy coder's output alone (for classical codecs their file), so payload bpd "
              "minus NLL bpd is the coder's overhead and bpd (.nzip) minus payload bpd the container's (a "
              "compact single-image file, format version 3: 7 bytes for local, whose ANS stream carries the "
              "4-byte checksum (counted as the container's, not in payload bpd), 11 for the others; runs "
              "before 2026-12-02 06:00 wrote 19-byte version 1 headers). `-archive`: all images in one .nzip archive (unnamed entries, 5 bytes each), chained "
              "through the codec's ANS stacks, side by side (vae v1: one chain per 1,000 images, at most 8; "
              "vae v2, the local-VAE: one per 300, at most 64). Throughput: images/s, "
              "wall clock. exact: decoded pixels identical to the original.\n\n")
    path_json.with_suffix(".md").write_text(header + markdown_table(results) + "\n")
    plot(results, path_json.with_suffix(".png"), f"CIFAR-10 test ({images} images): size vs decode speed")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codecs", default=None, help="comma-separated (default: every installed codec); NAME-archive: only a bits-back codec's whole-set archive")
    parser.add_argument("--n", type=int, default=None, help="images (default: all 10,000)")
    parser.add_argument("--data", default=None, help="CIFAR-10 path (default: $NZIP_DATA)")
    parser.add_argument("--batch", type=int, default=256, help="images per encode/decode call")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--update", action="store_true",
                        help="keep the committed rows of codecs not run now (a re-run of some codecs)")
    parser.add_argument("--note", default="", help="conditions of this run, recorded with it")
    parser.add_argument("--render", action="store_true", help="only re-render the .md and .png from the committed .json")
    args = parser.parse_args(argv)
    if args.render:
        write_report(args.out / ("cifar10.json" if args.n is None else "cifar10-subset.json"))
        return 0
    if args.threads:  # torch codecs and the local codec's own threads
        os.environ["NZIP_THREADS"] = str(args.threads)
        torch.set_num_threads(args.threads)
    names = args.codecs.split(",") if args.codecs else [s.name for s in codec_table.available_specs()]
    archive_only = {n.removesuffix("-archive") for n in names if n.endswith("-archive")} - set(names)  # e.g. vae-archive
    names = list(dict.fromkeys(n.removesuffix("-archive") for n in names))
    test = load_cifar10("test", args.data)
    indices = spread_subset(len(test), args.n or len(test), seed=0)
    images = [PixelImage("RGB", test.images[i]) for i in indices]
    labels = [test.names[i] for i in indices]
    full = len(indices) == len(test)
    stem = "cifar10" if full else "cifar10-subset"
    results = []
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for name in names:
        runs = [] if name in archive_only else [lambda: run_codec(name, images, labels, batch=args.batch)]
        if codec_table.get_codec(name).chained:  # bits-back: also the whole set as one chain
            runs.append(lambda: run_archive(name, images, [""] * len(images)))  # unnamed: the set's order names them
        for run in runs:
            t0 = time.time()
            result = run()
            results.append(result)
            nll = f", NLL {result.nll_bpd:.4f}" if result.nll_bpd is not None else ""
            print(f"{result.name}: {result.bpd:.4f} bpd{nll}, exact {result.exact}/{result.images}, "
                  f"encode {result.encode_img_per_s:.1f} img/s, decode {result.decode_img_per_s:.1f} img/s "
                  f"({time.time() - t0:.0f} s)", flush=True)
    cards = {}
    for name in names:
        codec = codec_table.get_codec(name)
        if getattr(codec, "card", None):
            cards[name] = {k: codec.card.get(k) for k in ("config", "sha256", "test_nll_bpd")}
            cards[name]["epochs"] = codec.card.get("training", {}).get("epochs")
    given = argv if argv is not None else sys.argv[1:]
    if "--note" in given:  # the note is recorded on its own
        given = given[: given.index("--note")] + given[given.index("--note") + 2 :]
    run = {"started": started, "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "command": "python benchmarks/cifar10.py " + " ".join(given), "codecs": [r.name for r in results],
           "torch_threads": torch.get_num_threads(), "batch": args.batch, "note": args.note}
    runs = [run]
    if args.update and (args.out / f"{stem}.json").exists():
        previous = json.loads((args.out / f"{stem}.json").read_text())
        if previous.get("images") != len(indices):
            raise SystemExit(f"--update: the committed results cover {previous.get('images')} images, not {len(indices)}")
        fresh = {r.name for r in results}
        results = [CodecResult(**row) for row in previous["codecs"] if row["name"] not in fresh] + results
        runs = previous.get("runs") or [{key: previous.get(key) for key in ("started", "finished", "command")}]
        runs = runs + [run]
        cards = {**previous.get("models", {}), **cards}
    extra = {"dataset": "CIFAR-10 test", "images": len(indices), "subset": not full, "started": runs[0]["started"],
             "finished": run["finished"], "models": cards, "command": runs[0]["command"], "runs": runs}
    write_results(results, args.out / f"{stem}.json", extra)
    write_report(args.out / f"{stem}.json")
    print(f"wrote {args.out / (stem + '.json')}, .md, .png")
    return 0 if all(r.exact == r.images for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
