"""Full-size photographs: every codec and ``auto`` on each image, one file per image.

    python benchmarks/photos.py [--photos DIR] [--codecs auto,pixelcnn,jxl,...]

Reports per image and codec the bits per sub-pixel of the real file (.nzip for neural codecs
and auto, the codec's own file for classical ones), encode and decode seconds, and
exactness; for the local models also auto's plain estimate (from a pixel sample, without
head offsets: what auto compares between them); writes ``benchmarks/results/photos.json``
and ``photos.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from neuralzip import codecs as codec_table
from neuralzip.bench import machine_description, run_codec
from neuralzip.images import read_image

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_PHOTOS = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "photos"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=Path(os.environ.get("NZIP_PHOTOS", DEFAULT_PHOTOS)))
    parser.add_argument("--codecs", default=None, help="comma-separated (default: auto and every installed codec)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--update", action="store_true",
                        help="replace only these codecs' rows in the existing results (a re-run after a change)")
    parser.add_argument("--note", default="", help="conditions of this run, recorded with it")
    args = parser.parse_args(argv)
    if args.threads:  # torch codecs and the local codec's own threads
        os.environ["NZIP_THREADS"] = str(args.threads)
        torch.set_num_threads(args.threads)
    names = args.codecs.split(",") if args.codecs else ["auto"] + [s.name for s in codec_table.available_specs()]
    files = sorted(p for p in args.photos.iterdir() if p.suffix.lower() == ".png")
    rows = []
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for path in files:
        image = read_image(path)
        for name in names:
            if name != "auto" and not codec_table.get_codec(name).supports(image):
                continue
            for spec in codec_table.available_specs():  # no codec reuses a fit another run made
                if spec.paired_estimate:
                    codec_table.get_codec(spec.name).forget_fit()
            r = run_codec(name, [image], [path.name], batch=1)
            rows.append({"image": path.name, "size": f"{image.width}x{image.height}", "codec": name,
                         "bits_per_subpixel": r.bpd, "bits_per_subpixel_nzip": r.bpd_nzip,
                         "nll_bits_per_subpixel": r.nll_bpd, "encode_seconds": r.encode_seconds,
                         "decode_seconds": r.decode_seconds, "exact": r.exact == 1})
            if name in codec_table.BY_NAME and codec_table.BY_NAME[name].paired_estimate:
                plain = codec_table.get_codec(name).estimate_bits(image, adapt=False)
                rows[-1]["plain_estimate_bits_per_subpixel"] = plain / image.subpixels
            print(f"{path.name} {name}: {r.bpd:.4f} bits/sub-pixel, encode {r.encode_seconds:.1f} s, "
                  f"decode {r.decode_seconds:.1f} s, exact {r.exact == 1}", flush=True)
    import json

    args.out.mkdir(parents=True, exist_ok=True)
    given = list(argv if argv is not None else sys.argv[1:])
    if "--note" in given:  # the note is recorded on its own
        del given[given.index("--note") : given.index("--note") + 2]
    command = "python benchmarks/photos.py " + " ".join(given)
    run = {"started": started, "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "codecs": names,
           "command": command, "torch_threads": torch.get_num_threads(), "note": args.note}
    runs = [run]
    if args.update and (args.out / "photos.json").exists():
        previous = json.loads((args.out / "photos.json").read_text())
        order = {name: i for i, name in enumerate(["auto"] + [s.name for s in codec_table.SPECS])}
        kept = [row for row in previous["results"] if row["codec"] not in names]
        rows = sorted(kept + rows, key=lambda row: (row["image"], order.get(row["codec"], 99)))
        runs = previous.get("runs", []) + runs
    document = {"photos": str(args.photos.name), "machine": machine_description(), "runs": runs, "results": rows}
    (args.out / "photos.json").write_text(json.dumps(document, indent=1) + "\n")
    lines = [f"# Photographs ({len(files)} Kodak images, full size)\n",
             "Bits per sub-pixel from the real file (.nzip for auto and neural codecs, the codec's own file "
             "for classical ones); seconds are wall clock for one image on this project's 2-core CPU machine. Runs:\n"]
    lines += [f"- {r['started']} to {r['finished']}: `{r['command']}` ({r['torch_threads']} torch threads, codecs "
              f"{', '.join(r['codecs'])}){'. ' + r['note'] if r.get('note') else ''}" for r in runs]
    lines += ["", "Plain estimate: for the local models, auto's estimate from a fixed sample of pixels without head "
              "offsets (the same pixels for both models, so the two compare pairwise).",
              "", "| image | codec | bits/sub-pixel | encode s | decode s | exact | plain estimate |",
              "|---|---|---:|---:|---:|---|---:|"]
    for row in rows:
        plain = row.get("plain_estimate_bits_per_subpixel")
        lines.append(f"| {row['image']} | {row['codec']} | {row['bits_per_subpixel']:.4f} | "
                     f"{row['encode_seconds']:.1f} | {row['decode_seconds']:.1f} | {'yes' if row['exact'] else 'NO'} | "
                     + (f"{plain:.4f} |" if plain is not None else "|"))
    (args.out / "photos.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / 'photos.json'} and photos.md")
    return 0 if all(row["exact"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
