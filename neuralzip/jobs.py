"""File jobs behind ``nzip compress`` and ``nzip decompress``: one file in, one file out.

The same functions run in the command's own process or, with ``-j N``, in N worker
processes (each handling chunks of the file list), so parallel and serial runs behave
identically. They never raise for a bad file: each returns messages (a summary line or a
one-line error) for the command to print. Outputs are written atomically and never replace
an existing file unless ``force``, so two commands working on the same folder at once
cannot corrupt a file: one of them reports that the output already exists.
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

NEURAL_BATCH = 64


@dataclass
class Options:
    model: str = "auto"
    budget: float | None = None
    force: bool = False
    max_pixels: int | None = None
    verbose: bool = False
    output: str | None = None  # single input only
    strip: bool = False  # drop metadata instead of keeping it
    keep_files: bool = True  # auto: JPEG inputs kept as files (False: --pixels)
    first_frame: bool = False  # multi-frame inputs: keep the first frame (else refused)
    candidates: str | None = None  # auto: the codecs to try (None: auto's default set)


@dataclass
class Message:
    error: bool
    where: str
    text: str


def known_errors():
    from .codecs import UnknownCodecError
    from .codecs.base import UnsupportedImageError
    from .container import FormatError
    from .data import DataError
    from .images import ImageError
    from .registry import ModelError

    return (FormatError, ImageError, ModelError, UnsupportedImageError, UnknownCodecError, DataError, OSError)


def describe(error: BaseException | str) -> str:
    """One line, in words: OSErrors as "FILE: what went wrong" without errno codes."""
    if isinstance(error, OSError) and error.strerror and error.args and isinstance(error.args[0], int):
        text = error.strerror[0].lower() + error.strerror[1:]
        return f"{error.filename}: {text}" if error.filename else text
    text = str(error) if str(error) else type(error).__name__
    return text.splitlines()[0]


def ratio_line(label: str, data_len: int, subpixels: int, input_len: int | None) -> str:
    bits = 8 * data_len / subpixels if subpixels else 0.0
    line = f"{label}: {data_len} bytes, {bits:.3f} bits/sub-pixel (whole file)"
    if input_len:
        line += f", {100 * data_len / input_len:.1f}% of input ({input_len} bytes)"
        if data_len > input_len:
            line += "; larger than the input, whose format was already compressed: nzip stores its pixels exactly"
    return line


def default_decompressed_name(path: Path, original: bool = False) -> Path:
    """X.png.nzip -> X.png (a PNG); for a kept JPEG file, X.jpg.nzip -> X.jpg."""
    name = path.name[:-5] if path.name.endswith(".nzip") and len(path.name) > 5 else path.name
    suffixes = (".jpg", ".jpeg") if original else (".png",)
    if not name.lower().endswith(suffixes):
        name += suffixes[0]
    return path.with_name(name)


def restored_bytes(image) -> bytes:
    """What a decompressed image is written as: the kept file itself, else a PNG."""
    from .images import png_bytes

    return image.original if image.original is not None else png_bytes(image)


def safe_entry_name(name: str, index: int, original: bool = False) -> str:
    """An archive entry name as a plain file name: no directories, no '..', ends in .png
    (in .jpg/.jpeg for a kept JPEG file)."""
    base = name.replace("\\", "/").split("/")[-1].strip()
    if base in ("", ".", "..") or base.startswith("."):
        base = f"image{index:05d}"
    suffixes = (".jpg", ".jpeg") if original else (".png",)
    if not base.lower().endswith(suffixes):
        base += suffixes[0]
    return base


def keeps_file(image, model: str, keep_files: bool) -> bool:
    """Whether ``image`` will be coded as its own file (a JPEG through the jpeg codec)."""
    return image.original_format == "jpeg" and (model == "jpeg" or (model == "auto" and keep_files))


def prepare_metadata(image, strip: bool, kept_as_file: bool = False) -> str | None:
    """Apply ``--strip`` to ``image``; returns the note to print, if any. An image holding
    something nzip cannot keep is refused (ImageError) unless ``strip`` accepts the loss or
    the file itself is kept (``kept_as_file``: a JPEG, with everything in it)."""
    from .images import ImageError
    from .metadata import describe

    if kept_as_file:
        return None
    if strip:
        dropped = [describe(image.metadata)] if image.metadata else []
        dropped += image.dropped_metadata
        image.metadata, image.dropped_metadata = (), []
        return f"stripped {', '.join(dropped)} (--strip)" if dropped else None
    if image.dropped_metadata:
        raise ImageError(f"holds {', '.join(image.dropped_metadata)}, which nzip cannot keep "
                         "(--strip compresses the pixels and drops all metadata)")
    return None


def compress_files(paths: list[Path], options: Options) -> list[Message]:
    """Compress each path to PATH.nzip (or ``options.output``)."""
    from . import api
    from .images import DEFAULT_MAX_PIXELS, read_image, write_atomic

    messages: list[Message] = []
    errors = known_errors()
    codec = None if options.model == api.AUTO else api.resolve_codec(options.model)
    loaded = []
    for path in paths:
        try:
            image = read_image(path, options.max_pixels or DEFAULT_MAX_PIXELS, options.first_frame)
            if image.frames_dropped:
                messages.append(Message(False, str(path), f"kept the first frame, left out {image.frames_dropped} (--first-frame)"))
                image.original = image.original_format = None  # not the same file any more
            if codec is not None:
                codec.check(image)
            note = prepare_metadata(image, options.strip, keeps_file(image, options.model, options.keep_files))
            if note:
                messages.append(Message(False, str(path), note))
            loaded.append((path, image))
        except errors as error:
            messages.append(Message(True, str(path), describe(error)))
    batch = 1 if codec is not None and codec.kind == "classical" else NEURAL_BATCH
    for start in range(0, len(loaded), batch):
        chunk = loaded[start : start + batch]
        try:
            results = api.compress_batch([image for _, image in chunk], options.model, options.budget, options.keep_files,
                                         options.candidates)
        except errors as error:
            messages += [Message(True, str(path), describe(error)) for path, _ in chunk]
            continue
        for (path, image), result in zip(chunk, results):
            if options.verbose and result.choice is not None:
                messages.append(Message(False, str(path), result.choice.explain(image.subpixels)))
            target = options.output or f"{path}.nzip"
            try:
                write_atomic(target, result.data, overwrite=options.force, like=path)
                messages.append(Message(False, "", ratio_line(f"{path} -> {target}", len(result.data),
                                                               image.subpixels, path.stat().st_size)))
            except errors as error:
                messages.append(Message(True, str(target), describe(error)))
    return messages


def decompress_files(paths: list[Path], options: Options) -> list[Message]:
    """Restore each .nzip file as PNG (an archive into a directory). Single-image files of
    the same codec are decoded together (see :func:`neuralzip.api.decode_containers`)."""
    from . import api
    from .container import unpack
    from .images import DEFAULT_MAX_PIXELS, write_atomic

    messages: list[Message] = []
    errors = known_errors()
    parsed = []
    for path in paths:
        try:
            if path.is_dir():
                raise IsADirectoryError(f"{path}: is a directory")
            parsed.append((path, unpack(path.read_bytes())))
        except errors as error:
            messages.append(Message(True, str(path), describe(error)))
    started = time.perf_counter()
    decoded = api.decode_containers([container for _, container in parsed], options.max_pixels or DEFAULT_MAX_PIXELS)
    elapsed = (time.perf_counter() - started) / max(1, len(parsed))
    for (path, container), images in zip(parsed, decoded):
        if isinstance(images, Exception):
            messages.append(Message(True, str(path), str(images)))
            continue
        try:
            if container.archive:
                directory = Path(options.output) if options.output else default_decompressed_name(path).with_suffix("")
                directory.mkdir(parents=True, exist_ok=True)
                written = 0
                for index, (name, image) in enumerate(images):
                    target = directory / safe_entry_name(name, index, image.original is not None)
                    try:
                        write_atomic(target, restored_bytes(image), overwrite=options.force)  # no input of its own: the umask default
                        written += 1
                    except errors as error:
                        messages.append(Message(True, str(target), describe(error)))
                messages.append(Message(False, "", f"{path} -> {directory}/: {written} of {len(images)} images "
                                                   f"({elapsed:.2f} s)"))
            else:
                image = images[0][1]
                target = Path(options.output) if options.output else default_decompressed_name(path, image.original is not None)
                write_atomic(target, restored_bytes(image), overwrite=options.force, like=path)
                messages.append(Message(False, "", f"{path} -> {target}: {image.width}x{image.height} {image.mode}, "
                                                   f"exact, checksum verified ({elapsed:.2f} s)"))
        except errors as error:
            messages.append(Message(True, str(path), describe(error)))
    return messages


class Interrupted(BaseException):
    """Raised on SIGTERM so that cleanup code (temporary files) runs as for Ctrl-C."""


def on_sigterm(signum, frame):
    raise Interrupted()


def _worker_init(threads: int) -> None:
    signal.signal(signal.SIGTERM, on_sigterm)
    os.environ["NZIP_THREADS"] = str(threads)  # codecs apply it when built (torch only if they use it)


def run(function, paths: list[Path], options: Options, jobs: int = 1):
    """Yield messages of ``function`` over ``paths``, in ``jobs`` processes when > 1."""
    from .progress import progress

    if jobs <= 1 or len(paths) <= 1:
        chunk = NEURAL_BATCH
        with progress(total=len(paths), unit="file", leave=False, disable=None if len(paths) > 1 else True) as bar:
            for start in range(0, len(paths), chunk):
                yield from function(paths[start : start + chunk], options)
                bar.update(len(paths[start : start + chunk]))
        return
    chunk = max(1, min(NEURAL_BATCH, -(-len(paths) // (4 * jobs))))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    pieces = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"),
                             initializer=_worker_init, initargs=(threads,)) as pool, \
            progress(total=len(paths), unit="file", leave=False) as bar:
        futures = {pool.submit(function, piece, options): len(piece) for piece in pieces}
        try:
            for future in as_completed(futures):
                bar.update(futures[future])
                yield from future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
