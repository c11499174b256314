"""The ``nzip`` command line (click). No maths here: it reads, calls :mod:`neuralzip.api`,
writes, and turns every failure into one line on stderr.

Exit codes: 0 success; 1 at least one input failed (the others were still processed);
2 usage error; 130 interrupted (SIGINT/SIGTERM). Outputs are written atomically and never
replace an existing file without ``-f``; inputs are never modified or deleted.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path

import click

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
IMAGE_SUFFIXES = {".png", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".pnm", ".gif", ".jpg", ".jpeg", ".webp", ".tga"}


class Reporter:
    """Collects failures; prints one line per problem."""

    def __init__(self, debug: bool, quiet: bool):
        self.debug, self.quiet, self.failed = debug, quiet, 0

    def error(self, where: str, error: BaseException | str) -> None:
        self.failed += 1
        from .jobs import describe

        message = describe(error)
        if where and not message.startswith(where):
            message = f"{where}: {message}"
        click.echo(f"nzip: {message}", err=True)
        if self.debug and isinstance(error, BaseException):
            traceback.print_exception(error)

    def say(self, line: str) -> None:
        if not self.quiet:
            click.echo(line, err=True)


def _known_errors():
    from .dataset import DatasetError
    from .jobs import known_errors

    return known_errors() + (DatasetError,)


def _run(ctx: click.Context, body) -> None:
    """Run a command body with the shared error handling and exit code."""
    from .jobs import Interrupted, on_sigterm

    obj = ctx.obj
    signal.signal(signal.SIGTERM, on_sigterm)
    reporter = Reporter(obj["debug"], obj.get("quiet", False))
    from .codecs import UnknownCodecError

    try:
        body(reporter)
    except UnknownCodecError as error:  # a usage error: the option's value
        click.echo(f"nzip: {error}", err=True)
        sys.exit(EXIT_USAGE)
    except click.UsageError:  # click reports it (with the usage line) and exits 2
        raise
    except (KeyboardInterrupt, Interrupted):
        click.echo("nzip: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except _known_errors() as error:
        reporter.error("", error)
    except Exception as error:  # a bug: still one line unless --debug
        reporter.error("", f"internal error: {type(error).__name__}: {error} (run with --debug for details)")
        if obj["debug"]:
            traceback.print_exc()
    sys.exit(EXIT_FAILED if reporter.failed else 0)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("--threads", type=click.IntRange(1, 512), help="CPU threads for neural codecs (default: all).")
@click.version_option(package_name="neuralzip")
@click.pass_context
def main(ctx, debug, threads):
    """nzip: lossless image compression with neural likelihood models."""
    ctx.obj = {"debug": debug}
    if threads:
        os.environ["NZIP_THREADS"] = str(threads)


def _set_threads() -> None:
    """Torch's thread count, only if torch is already loaded (codecs that load it later
    apply NZIP_THREADS themselves; the local codec never loads it)."""
    if "torch" in sys.modules:
        from .threads import configure_torch

        configure_torch()


def _expand(paths: tuple[str, ...], reporter: Reporter, allow_dirs: bool) -> list[Path]:
    out = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            if not allow_dirs:
                reporter.error(str(path), "is a directory (give -o ARCHIVE.nzip to bundle a folder)")
                continue
            files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                reporter.error(str(path), "no image files in this directory")
            out += files
        else:
            out.append(path)
    return out


def _report(reporter: Reporter, messages) -> None:
    for message in messages:
        if message.error:
            reporter.error(message.where, message.text)
        else:
            reporter.say(f"nzip: {message.where}: {message.text}" if message.where else message.text)


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", help="Output file (one input) or archive (several inputs or a folder).")
@click.option("-m", "--model", default="auto", show_default=True,
              help="auto (smallest file of the codecs it tries: --try), local, local-photo, pixelcnn, flow, vae, png, webp, jxl, j2k, jpeg (see `nzip models`).")
@click.option("-f", "--force", is_flag=True, help="Overwrite existing output files.")
@click.option("-c", "--stdout", "to_stdout", is_flag=True, help="Write the .nzip data to standard output.")
@click.option("-v", "--verbose", is_flag=True, help="Say which codec was used and why.")
@click.option("-q", "--quiet", is_flag=True, help="No summary lines.")
@click.option("--budget", type=click.FloatRange(min=0.1), default=None,
              help="auto: seconds per image for trying codecs, and for decoding the one chosen (estimated; default 60).")
@click.option("--max-pixels", type=click.IntRange(1), default=None, help="Refuse larger images (default 268M pixels).")
@click.option("--strip", is_flag=True, help="Drop metadata (ICC profile, EXIF, text, ...): pixels only.")
@click.option("--pixels", is_flag=True, help="auto: code a JPEG input's pixels instead of keeping the JPEG file itself.")
@click.option("--try", "try_codecs", metavar="CODECS",
              help="auto: the codecs to try, comma-separated, or 'all' (default: all but pixelcnn, flow and vae, "
                   "which rarely win for their time).")
@click.option("--first-frame", is_flag=True, help="Animations and multi-page files: keep the first frame (else refused).")
@click.option("-j", "--jobs", type=click.IntRange(1, 256), default=1, show_default=True, help="Parallel worker processes.")
@click.pass_context
def compress(ctx, inputs, output, model, force, to_stdout, verbose, quiet, budget, max_pixels, strip, pixels, try_codecs,
             first_frame, jobs):
    """Compress images to IMG.nzip (inputs are kept)."""
    ctx.obj["quiet"] = quiet

    def body(reporter: Reporter):
        from . import api, codecs, jobs as file_jobs
        from .images import DEFAULT_MAX_PIXELS, read_image, write_atomic

        _set_threads()
        if model != api.AUTO and model not in codecs.BY_NAME:  # a usage error, before any file
            raise codecs.UnknownCodecError(f"unknown codec {model!r} (available: auto, "
                                           f"{', '.join(s.name for s in codecs.available_specs())})")
        if try_codecs is not None:
            if model != api.AUTO:
                raise click.UsageError("--try chooses the codecs auto tries: use it with -m auto")
            from .auto import candidates

            candidates(try_codecs)  # a usage error, before any file
        archive = output is not None and (len(inputs) > 1 or any(Path(p).is_dir() for p in inputs))
        paths = _expand(inputs, reporter, allow_dirs=archive)
        if to_stdout and (len(paths) != 1 or output):
            raise click.UsageError("-c takes exactly one input and no -o")
        if output and not archive and len(paths) > 1:
            raise click.UsageError("-o with several inputs makes an archive; give it a name ending in .nzip")
        if verbose and model != api.AUTO:
            codec = api.resolve_codec(model)
            reporter.say(f"codec: {codec.name} ({codec.description})")
        options = file_jobs.Options(model, budget, force, max_pixels, verbose, None if archive else output, strip,
                                    keep_files=not pixels, first_frame=first_frame, candidates=try_codecs)
        if not archive and not to_stdout:
            _report(reporter, file_jobs.run(file_jobs.compress_files, paths, options, jobs))
            return
        loaded = []
        for path in paths:
            try:
                image = read_image(path, max_pixels or DEFAULT_MAX_PIXELS, first_frame)
                if image.frames_dropped:
                    reporter.say(f"nzip: {path}: kept the first frame, left out {image.frames_dropped} (--first-frame)")
                # an archive keeps a JPEG as its file only with -m jpeg (auto picks one codec for all)
                kept = file_jobs.keeps_file(image, model, not pixels) and (model == "jpeg" or to_stdout)
                note = file_jobs.prepare_metadata(image, strip, kept)
                if note:
                    reporter.say(f"nzip: {path}: {note}")
                loaded.append((path, image))
            except _known_errors() as error:
                reporter.error(str(path), error)
        if not loaded:
            return
        if to_stdout:
            (path, image), = loaded
            result = api.compress_batch([image], model, budget, keep_files=not pixels, candidates=try_codecs)[0]
            if verbose and result.choice is not None:
                reporter.say(f"{path}: {result.choice.explain(image.subpixels)}")
            sys.stdout.buffer.write(result.data)
            sys.stdout.buffer.flush()
            reporter.say(file_jobs.ratio_line(f"{path} -> stdout", len(result.data), image.subpixels, path.stat().st_size))
            return
        names = _unique_names([p.name for p, _ in loaded])
        result = api.compress_archive([im for _, im in loaded], names, model, budget, try_codecs)
        if verbose:
            reporter.say(f"archive codec: {result.codec}" + (" (the smallest archive of the codecs tried)" if model == api.AUTO else ""))
        write_atomic(output, result.data, overwrite=force)
        total_in = sum(p.stat().st_size for p, _ in loaded)
        subpixels = sum(im.subpixels for _, im in loaded)
        reporter.say(file_jobs.ratio_line(f"{len(loaded)} images -> {output}", len(result.data), subpixels, total_in))

    _run(ctx, body)


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        if name in seen:
            seen[name] += 1
            stem, dot, suffix = name.rpartition(".")
            name = f"{stem}-{seen[name]}.{suffix}" if dot else f"{name}-{seen[name]}"
        seen.setdefault(name, 0)
        out.append(name)
    return out


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", help="Output PNG (single image) or directory (archive).")
@click.option("-f", "--force", is_flag=True, help="Overwrite existing output files.")
@click.option("-q", "--quiet", is_flag=True, help="No summary lines.")
@click.option("--max-pixels", type=click.IntRange(1), default=None, help="Refuse larger images (default 268M pixels).")
@click.option("-j", "--jobs", type=click.IntRange(1, 256), default=1, show_default=True, help="Parallel worker processes.")
@click.pass_context
def decompress(ctx, inputs, output, force, quiet, max_pixels, jobs):
    """Restore images from .nzip files as PNG (pixels identical, checksum verified)."""
    ctx.obj["quiet"] = quiet

    def body(reporter: Reporter):
        from . import jobs as file_jobs

        _set_threads()
        if output and len(inputs) > 1:
            raise click.UsageError("-o takes one input")
        options = file_jobs.Options(force=force, max_pixels=max_pixels, output=output)
        _report(reporter, file_jobs.run(file_jobs.decompress_files, [Path(p) for p in inputs], options, jobs))

    _run(ctx, body)


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def info(ctx, inputs, as_json):
    """Show what .nzip files contain (format, codec, model, images, sizes)."""

    def body(reporter: Reporter):
        from . import api

        for raw in inputs:
            path = Path(raw)
            try:
                if path.is_dir():
                    raise IsADirectoryError(f"{path}: is a directory")
                details = api.info(path.read_bytes())
            except _known_errors() as error:
                reporter.error(str(path), error)
                continue
            if as_json:
                click.echo(json.dumps({"file": str(path), **details}))
                continue
            click.echo(f"{path}:")
            model = f"model {details['model_version']}" if details.get("model_version") else "no model"
            click.echo(f"  format version {details['format_version']}, codec {details['codec']} (id {details['codec_id']}), "
                       f"{model} (hash {details['model_hash']})")
            kind = "archive" + (", chained (bits-back)" if details["chained"] else "") if details["archive"] else "single image"
            click.echo(f"  {kind}, {details['file_bytes']} bytes, {details['bits_per_subpixel']:.3f} bits/sub-pixel overall")
            for image in details["images"]:
                label = f"  {image['name'] or 'image'}: {image['width']}x{image['height']} {image['mode']}"
                if image["payload_bytes"] is not None:
                    label += f", payload {image['payload_bytes']} bytes ({image['bits_per_subpixel']:.3f} bits/sub-pixel)"
                if image.get("metadata"):
                    label += f", keeps {image['metadata']}"
                click.echo(label + f", crc32 {image['checksum']}")

    _run(ctx, body)


def benchmark_results() -> dict:
    """The committed CIFAR-10 benchmark results, by codec name (empty if none): the
    checkout's, else the copy installed with the package (a wheel or non-editable install)."""
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "cifar10.json"
    if not path.is_file():
        path = Path(__file__).resolve().parent / "results" / "cifar10.json"
    try:
        return {c["name"]: c for c in json.loads(path.read_text())["codecs"]}
    except (OSError, ValueError, KeyError):
        return {}


@main.command()
@click.pass_context
def models(ctx):
    """List codecs and models with their measured CIFAR-10 test bits per dimension."""

    def body(reporter: Reporter):
        from . import codecs
        from .auto import ON_REQUEST

        results = benchmark_results()
        click.echo(f"{'name':11} {'id':>3} {'kind':9} {'coded bpd':>9} {'NLL bpd':>8}  description")
        for spec in codecs.SPECS:
            available = codecs.spec_available(spec)
            # a bits-back codec is measured as one archive (single files pay the initial bits)
            archive = results.get(f"{spec.name}-archive")
            r = archive or results.get(spec.name, {})
            bpd = f"{r['bpd']:.3f}" if r.get("bpd") is not None else "-"
            nll = f"{r['nll_bpd']:.3f}" if r.get("nll_bpd") is not None else "-"
            note = "" if available else "  [weights not installed]"
            mark = " (bpd: all images as one archive)" if archive else ""
            click.echo(f"{spec.name:11} {spec.codec_id:>3} {spec.kind:9} {bpd:>9} {nll:>8}  {spec.description}{mark}{note}")
            if spec.model:
                from .registry import installed_versions

                versions = installed_versions(spec.model)
                for version in versions:
                    default = "  (default for -m " + spec.name + ")" if version is versions[-1] else ""
                    click.echo(f"{'':11} {'':>3}   version {version.version}, weights {version.sha256[:8]}{default}")
        click.echo(f"{'auto':11} {'':>3} {'selector':9} {'':>9} {'':>8}  smallest file per image among the codecs above but " + ", ".join(ON_REQUEST) + " (--try all: every one; default)")
        if results:
            click.echo("bpd: CIFAR-10 test set, all 10,000 images, from benchmarks/results/cifar10.json; "
                       "files made with any listed version decode, the default version encodes")

    _run(ctx, body)


@main.command()
@click.argument("image")
@click.option("-m", "--model", default="auto", show_default=True,
              help="Neural model that attributes bits (auto: the one auto would store the image with, "
                   "else the best neural one, and the codec auto would really use is named).")
@click.option("-o", "--output", help="Heatmap PNG (default: IMAGE.bits.png).")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing output file.")
@click.pass_context
def explain(ctx, image, model, output, force):
    """Draw how many bits each pixel costs, beside the image, with the total."""

    def body(reporter: Reporter):
        from . import api, codecs
        from .explain import ExplainError, pixel_bits, render, summary
        from .images import read_image, write_atomic

        _set_threads()
        picture = read_image(image)
        note = ""
        if model == api.AUTO:
            choice = api.compress_batch([picture], api.AUTO)[0].choice
            neural = [name for name in sorted(choice.sizes, key=choice.sizes.get)
                      if hasattr(codecs.get_codec(name), "pixel_bits")]
            if not neural:
                reporter.error(image, "no neural codec that attributes bits can code this image")
                return
            codec = codecs.get_codec(neural[0])
            if choice.codec != codec.name:
                note = (f"; auto stores this image with {choice.codec} "
                        f"({8 * choice.sizes[choice.codec] / picture.subpixels:.3f} payload bits/sub-pixel), "
                        f"the map shows {codec.name}'s model")
        else:
            codec = api.resolve_codec(model)
        try:
            bits = pixel_bits(codec, picture)
        except ExplainError as error:
            reporter.error(image, error)
            return
        line = summary(codec.name, bits, picture) + note
        target = output or f"{Path(image).with_suffix('')}.bits.png"
        write_atomic(target, render(picture, bits, f"{Path(image).name}: {summary(codec.name, bits, picture)}"), overwrite=force)
        reporter.say(f"{image} -> {target}: {line}")

    _run(ctx, body)


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("-m", "--models", help="Comma-separated codecs (default: every installed one).")
@click.option("--json", "json_path", help="Write the results as JSON here.")
@click.option("--plot", "plot_path", help="Write a bits/sub-pixel vs decode speed plot (PNG) here.")
@click.option("--batch", type=click.IntRange(1), default=64, show_default=True, help="Images per codec call.")
@click.pass_context
def bench(ctx, paths, models, json_path, plot_path, batch):
    """Compare every codec on your own images or folders: size, speed, exactness."""

    def body(reporter: Reporter):
        from . import codecs
        from .bench import markdown_table, plot, run_codec, write_results
        from .images import read_image

        _set_threads()
        files = _expand(paths, reporter, allow_dirs=True)
        images, labels, sizes = [], [], []
        for path in files:
            try:
                images.append(read_image(path))
                labels.append(str(path))
                sizes.append(path.stat().st_size)
            except _known_errors() as error:
                reporter.error(str(path), error)
        if not images:
            return
        names = models.split(",") if models else [spec.name for spec in codecs.available_specs()]
        results = []
        for name in names:
            codec = codecs.get_codec(name)
            chosen, reasons = [], {}
            for i, im in enumerate(images):
                try:
                    codec.check(im)
                    chosen.append(i)
                except codecs.UnsupportedImageError as error:
                    reasons.setdefault(str(error), []).append(Path(labels[i]).name)
            for why, which in reasons.items():
                reporter.say(f"bench: {name} skips {len(which)} of {len(images)} images ({', '.join(which[:3])}"
                             f"{', ...' if len(which) > 3 else ''}): {why}")
            if not chosen:
                continue
            reporter.say(f"bench: {name} on {len(chosen)} image{'s' * (len(chosen) > 1)} ...")
            result = run_codec(name, [images[i] for i in chosen], [labels[i] for i in chosen], batch=batch, keep_per_image=True)
            result.ratio = result.file_bytes / sum(sizes[i] for i in chosen)
            reporter.say(f"bench: {name}: {result.bpd:.3f} bits/sub-pixel, {result.exact}/{result.images} exact, "
                         f"encode {result.encode_seconds:.1f} s, decode {result.decode_seconds:.1f} s")
            results.append(result)
        click.echo(markdown_table(results, with_ratio=True))
        if json_path:
            write_results(results, Path(json_path), {"inputs": labels})
        if plot_path:
            counts = sorted({r.images for r in results})
            scope = f"{len(images)} images" if counts == [len(images)] else \
                f"{len(images)} images (each codec on those it codes: {', '.join(f'{r.name} {r.images}' for r in results)})"
            plot(results, Path(plot_path), f"{scope}: size vs decode speed")

    _run(ctx, body)


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("family")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def train(family, args):
    """Train a model family (resumable): nzip train pixelcnn --out runs/x [--data PATH] [key=value ...]."""
    from .train import main as train_main

    sys.exit(train_main([family, *args]))


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--name", required=True, help="Shipped model name, e.g. pixelcnn.")
@click.option("--data", help="CIFAR-10 path (for the test NLL on the card).")
@click.option("--eval-images", type=int, default=None, help="Test images for the card's NLL (default all).")
@click.option("--version", "version", type=click.IntRange(1), default=None,
              help="Model version to write (default: one above the newest installed; existing versions are frozen).")
@click.option("--note", default=None, help="Recorded in the card (why this size, what changed).")
@click.option("--activation-bits", type=click.IntRange(8, 12), default=None,
              help="local, local-vae: bits of the exact (decoder) network's activations (above 8: int32 sums; "
                   "default: the run's).")
@click.pass_context
def export(ctx, run_dir, name, data, eval_images, version, note, activation_bits):
    """Export a training run's EMA weights as a new model version: models/NAME-vN.safetensors + .json."""

    def body(reporter: Reporter):
        from .export import export_run

        card = export_run(Path(run_dir), name, data, eval_images, version=version, note=note,
                          activation_bits=activation_bits)
        exact = card["test_nll_bpd"].get("exact")
        reporter.say(f"exported {name} v{card['version']}: test NLL {card['test_nll_bpd']['float']:.4f} bpd (float"
                     + (f", exact {exact:.4f}" if exact is not None else "")
                     + f", {card['test_nll_bpd']['images']} images), sha256 {card['sha256'][:12]}")

    _run(ctx, body)


@main.group()
def dataset():
    """Image collections as shards of .nzip files (see `nzip dataset compress --help`)."""


@dataset.command("compress")
@click.argument("source", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("-m", "--model", default="local", show_default=True, help="Codec for every image (auto: smallest per image).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: worker processes here; ray: Ray Data actors (pip install \"neuralzip[ray]\").")
@click.option("--address", default=None, help="ray: address of an existing cluster (default: start a local one).")
@click.option("--workers", type=click.IntRange(1), default=None, help="Parallel workers (default: CPU count).")
@click.option("--shard-size", type=click.IntRange(1), default=1000, show_default=True, help="Images per shard.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
@click.pass_context
def dataset_compress(ctx, source, out, model, engine, address, workers, shard_size, quiet):
    """Compress every image under SOURCE into shards in OUT (resumes; complete shards skipped)."""
    ctx.obj["quiet"] = quiet

    def body(reporter: Reporter):
        from . import dataset as ds

        if engine == "ray":
            try:
                import ray  # noqa: F401
            except ImportError:
                raise click.UsageError('--engine ray needs Ray: pip install "neuralzip[ray]"') from None
        manifest = ds.compress(Path(source), Path(out), model, shard_size, engine, workers, address,
                               progress=lambda job: reporter.say(f"nzip: {job.tar_path.name}: {len(job.files)} images done"))
        for row in manifest["images"]:
            if "error" in row:
                reporter.error(row["path"], row["error"])
        bpd = manifest["bits_per_subpixel"]
        reporter.say(f"{source} -> {out}: {manifest['count']} images in {len(manifest['shards'])} shards, "
                     f"{manifest['nzip_bytes']} bytes" + (f", {bpd:.3f} bits/sub-pixel" if bpd else "")
                     + (f", {manifest['errors']} inputs not readable (listed in manifest.json)" if manifest["errors"] else ""))

    _run(ctx, body)


@dataset.command("decompress")
@click.argument("out", type=click.Path(exists=True, file_okay=False))
@click.argument("target", type=click.Path(file_okay=False))
@click.pass_context
def dataset_decompress(ctx, out, target):
    """Restore every image of dataset OUT under TARGET at its path relative to the source."""

    def body(reporter: Reporter):
        from . import dataset as ds

        written, problems = ds.decompress(Path(out), Path(target))
        for problem in problems:
            reporter.error("", problem)
        reporter.say(f"{out} -> {target}: {written} images restored, checksums verified")

    _run(ctx, body)


@dataset.command("verify")
@click.argument("out", type=click.Path(exists=True, file_okay=False))
@click.pass_context
def dataset_verify(ctx, out):
    """Decode everything in dataset OUT and check it against the manifest (exit 1 on any problem)."""

    def body(reporter: Reporter):
        from . import dataset as ds

        verified, problems = ds.verify(Path(out))
        for problem in problems:
            reporter.error("", problem)
        reporter.say(f"{out}: {verified} images verified" + (f", {len(problems)} problems" if problems else ", no problems"))

    _run(ctx, body)


def entry() -> None:
    """The ``nzip`` executable: click's usage errors in nzip's one-line style, exit code 2."""
    try:
        main(standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.exceptions.Abort:
        click.echo("nzip: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.UsageError as error:
        hint = f" (see `nzip {error.ctx.command_path.split(' ', 1)[1]} --help`)" if error.ctx and " " in error.ctx.command_path else " (see `nzip --help`)"
        click.echo(f"nzip: {error.format_message()}{hint}", err=True)
        sys.exit(EXIT_USAGE)
    except click.ClickException as error:
        click.echo(f"nzip: {error.format_message()}", err=True)
        sys.exit(error.exit_code)


if __name__ == "__main__":  # pragma: no cover
    entry()
