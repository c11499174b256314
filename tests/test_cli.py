"""The nzip command line: gzip-like habits, exact round trips, one-line errors."""

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from neuralzip.cli import main
from neuralzip.container import FORMAT_VERSION
from neuralzip.images import read_image

from .conftest import SAMPLE, smooth_image


@pytest.fixture
def workdir(tmp_path, tiny_codecs):  # the CLI runs in-process: tiny models
    shutil.copy(SAMPLE, tmp_path / "hopper.png")
    Image.fromarray(smooth_image(10, 13)).save(tmp_path / "small.png")
    os.chdir(tmp_path)
    return tmp_path


def run(*args):
    return CliRunner().invoke(main, list(args))


def _same_pixels(a, b):
    x, y = read_image(a), read_image(b)
    return x.mode == y.mode and np.array_equal(x.pixels, y.pixels)


@pytest.mark.parametrize("model", ["png", "webp", "jxl", "j2k", "pixelcnn", "flow", "vae", "local"])
def test_round_trip_every_codec(workdir, model):
    result = run("compress", "-m", model, "small.png")
    assert result.exit_code == 0, result.output
    assert "bits/sub-pixel" in result.stderr and "small.png.nzip" in result.stderr
    assert (workdir / "small.png").exists()  # input kept
    os.rename("small.png", "original.png")
    result = run("decompress", "small.png.nzip")
    assert result.exit_code == 0, result.output
    assert _same_pixels("original.png", "small.png")


def test_refuses_to_overwrite_without_force(workdir):
    assert run("compress", "-m", "png", "small.png").exit_code == 0
    before = (workdir / "small.png.nzip").read_bytes()
    result = run("compress", "-m", "webp", "small.png")
    assert result.exit_code == 1 and "already exists" in result.stderr
    assert (workdir / "small.png.nzip").read_bytes() == before
    assert run("compress", "-f", "-m", "webp", "small.png").exit_code == 0
    assert (workdir / "small.png.nzip").read_bytes() != before


def test_stdout_and_explicit_output(workdir):
    result = CliRunner().invoke(main, ["compress", "-c", "-m", "png", "small.png"])
    assert result.exit_code == 0
    (workdir / "piped.nzip").write_bytes(result.stdout_bytes)
    assert run("decompress", "piped.nzip", "-o", "back.png").exit_code == 0
    assert _same_pixels("small.png", "back.png")


def test_archive_round_trip(workdir):
    result = run("compress", "-m", "pixelcnn", "small.png", "hopper.png", "-o", "set.nzip")
    assert result.exit_code == 0, result.stderr
    info = run("info", "set.nzip")
    assert "archive" in info.output and "small.png" in info.output and "hopper.png" in info.output
    assert run("decompress", "set.nzip", "-o", "restored").exit_code == 0
    assert _same_pixels("small.png", "restored/small.png") and _same_pixels("hopper.png", "restored/hopper.png")


def test_info_and_models(workdir):
    run("compress", "-m", "jxl", "small.png")
    result = run("info", "small.png.nzip")
    assert result.exit_code == 0
    assert "format version 3" in result.output  # a single image: the compact layout
    assert "jxl" in result.output and "13x10 RGB" in result.output
    result = run("models")
    assert result.exit_code == 0 and all(name in result.output for name in ("png", "webp", "jxl", "j2k", "pixelcnn"))


def test_bad_inputs_fail_cleanly_and_others_still_run(workdir):
    (workdir / "text.png").write_text("not an image")
    (workdir / "empty.png").write_bytes(b"")
    os.mkdir("folder")
    result = run("compress", "-m", "png", "text.png", "empty.png", "folder", "missing.png", "small.png")
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("nzip:")]
    assert len(lines) == 4 and "Traceback" not in result.stderr
    assert (workdir / "small.png.nzip").exists()
    assert not any(p.name.endswith(".nzip") for p in workdir.iterdir() if p.name != "small.png.nzip")


def test_damaged_files_give_distinct_errors(workdir):
    run("compress", "-m", "png", "small.png")
    data = (workdir / "small.png.nzip").read_bytes()
    assert data[:2] == b"Nz"  # a compact file: codec id at byte 2, flags at byte 4
    damaged = {
        "truncated.nzip": (data[:-40], "truncated"),  # into the image data (a cut IEND alone still decodes exactly)
        "flipped.nzip": (data[:-60] + bytes([data[-60] ^ 0x10]) + data[-59:], "checksum|corrupt|does not decode|damaged"),
        "version.nzip": (b"NZIP" + bytes([FORMAT_VERSION + 7]) + data[2:], "version"),
        "reserved.nzip": (data[:4] + bytes([data[4] | 0x80]) + data[5:], "newer nzip"),
        "notnzip.nzip": (b"GIF89a" + data, "not a .nzip"),
        "unknown.nzip": (data[:2] + bytes([250]) + data[3:], "unknown codec"),
        "empty.nzip": (b"", "empty"),
    }
    for name, (content, message) in damaged.items():
        (workdir / name).write_bytes(content)
        result = run("decompress", name)
        assert result.exit_code == 1, name
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        import re

        assert re.search(message, result.stderr), (name, result.stderr)
        assert not (workdir / name.replace(".nzip", ".png")).exists()


def test_many_files_decode_as_one_batch_and_a_corrupt_one_fails_alone(workdir):
    names = []
    for i in range(5):
        Image.fromarray(smooth_image(8, 6 + i, seed=i)).save(f"b{i}.png")
        names.append(f"b{i}.png")
    assert run("compress", "-m", "pixelcnn", *names).exit_code == 0
    data = bytearray((workdir / "b2.png.nzip").read_bytes())
    data[-3] ^= 0x5A  # damage the payload's last bytes
    (workdir / "b2.png.nzip").write_bytes(bytes(data))
    for name in names:
        os.rename(name, f"orig-{name}")
    result = run("decompress", *[f"{n}.nzip" for n in names])
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("nzip:")]
    assert len(errors) == 1 and "b2.png.nzip" in errors[0], result.stderr
    assert not (workdir / "b2.png").exists()
    for name in names:
        if name != "b2.png":
            assert _same_pixels(f"orig-{name}", name)


def test_model_hash_mismatch_is_reported(workdir, tiny_pixelcnn):
    run("compress", "-m", "pixelcnn", "small.png")
    data = bytearray((workdir / "small.png.nzip").read_bytes())
    data[6] ^= 0xFF  # first byte of the model hash
    (workdir / "other.nzip").write_bytes(bytes(data))
    result = run("decompress", "other.nzip")
    assert result.exit_code == 1 and "needs model 'pixelcnn': weights with hash" in result.stderr
    assert "are not installed (installed versions: v1" in result.stderr


def test_sigterm_leaves_no_partial_output(tmp_path):
    Image.fromarray(smooth_image(192, 192, seed=5)).save(tmp_path / "img00.png")
    for i in range(1, 30):
        shutil.copy(tmp_path / "img00.png", tmp_path / f"img{i:02d}.png")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen([sys.executable, "-m", "neuralzip.cli", "compress", "-m", "webp", *sorted(p.name for p in tmp_path.iterdir())],
                               cwd=tmp_path, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.name.endswith(".nzip") for p in tmp_path.iterdir()):
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert b"Traceback" not in stderr and b"interrupted" in stderr
    assert len(list(tmp_path.glob("*.nzip"))) < 30  # it really stopped mid-way
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    from neuralzip.api import decompress

    for output in tmp_path.glob("*.nzip"):
        decompress(output.read_bytes())  # every output that exists is complete


def test_explain_writes_a_heatmap(workdir):
    result = run("explain", "-m", "pixelcnn", "hopper.png", "-o", "bits.png")
    assert result.exit_code == 0, result.stderr
    assert "bits/sub-pixel" in result.stderr
    with Image.open(workdir / "bits.png") as im:
        assert im.format == "PNG" and im.width > 300 and im.height > 200
    result = run("explain", "-m", "png", "hopper.png", "-o", "nope.png")
    assert result.exit_code == 1 and "cannot attribute" in result.stderr and not (workdir / "nope.png").exists()


def test_bench_on_own_images(workdir):
    import json

    os.mkdir("pics")
    shutil.copy("small.png", "pics/a.png")
    Image.fromarray(smooth_image(9, 9, channels=1)[:, :, 0]).save("pics/grey.png")
    Image.fromarray(smooth_image(9, 9)).convert("P", palette=Image.ADAPTIVE, colors=8).save("pics/palette.png")
    result = run("bench", "pics", "hopper.png", "-m", "png,jxl,pixelcnn", "--json", "b.json", "--plot", "b.png")
    assert result.exit_code == 0, result.stderr
    assert "| jxl |" in result.output and "| pixelcnn |" in result.output
    document = json.loads((workdir / "b.json").read_text())
    by_name = {c["name"]: c for c in document["codecs"]}
    assert by_name["png"]["images"] == 4 and by_name["pixelcnn"]["images"] == 3  # no palettes for pixelcnn
    for codec in document["codecs"]:
        assert codec["exact"] == codec["images"]
        assert 0 < codec["bpd"] < 16 and codec["encode_img_per_s"] > 0 and codec["decode_img_per_s"] > 0
        assert len(codec["per_image"]) == codec["images"]
    assert by_name["pixelcnn"]["nll_bpd"] is not None
    with Image.open(workdir / "b.png") as im:
        assert im.format == "PNG"


def test_parallel_jobs_and_concurrent_commands(tmp_path):
    """-j 2 round-trips a folder exactly; two commands at once on the same files corrupt nothing."""
    names = []
    for i in range(12):
        Image.fromarray(smooth_image(9 + i, 11, seed=i)).save(tmp_path / f"p{i:02d}.png")
        names.append(f"p{i:02d}.png")
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "neuralzip.cli", "compress", "-m", "png", "-j", "2", *names]
    first = subprocess.Popen(cmd, cwd=tmp_path, stderr=subprocess.PIPE, env=env)
    second = subprocess.Popen(cmd, cwd=tmp_path, stderr=subprocess.PIPE, env=env)
    _, err1 = first.communicate(timeout=300)
    _, err2 = second.communicate(timeout=300)
    assert b"Traceback" not in err1 + err2
    # every file was written by exactly one of them; the other reported that it exists
    assert (err1 + err2).count(b"bits/sub-pixel") == 12 and (err1 + err2).count(b"already exists") == 12
    for name in names:
        os.rename(tmp_path / name, tmp_path / f"orig-{name}")
    result = subprocess.run([sys.executable, "-m", "neuralzip.cli", "decompress", "-j", "2", *[f"{n}.nzip" for n in names]],
                            cwd=tmp_path, capture_output=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    for name in names:
        assert _same_pixels(tmp_path / f"orig-{name}", tmp_path / name)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_outputs_follow_the_input_mode_and_time(workdir):
    os.chmod("small.png", 0o640)
    os.utime("small.png", (1_600_000_000, 1_600_000_000))
    assert run("compress", "-m", "png", "small.png").exit_code == 0
    made = os.stat("small.png.nzip")
    assert made.st_mode & 0o777 == 0o640 and int(made.st_mtime) == 1_600_000_000
    os.chmod("small.png.nzip", 0o604)
    assert run("decompress", "small.png.nzip", "-o", "back.png").exit_code == 0
    assert os.stat("back.png").st_mode & 0o777 == 0o604
    old = os.umask(0o027)
    try:
        assert run("compress", "-m", "png", "small.png", "hopper.png", "-o", "set.nzip").exit_code == 0
    finally:
        os.umask(old)
    assert os.stat("set.nzip").st_mode & 0o777 == 0o640  # no single input: the umask's default


def test_usage_errors_exit_2_and_errors_are_one_plain_line(workdir):
    result = run("compress", "-m", "foo", "small.png")
    assert result.exit_code == 2 and result.stderr.strip() == (
        result.stderr.strip().splitlines()[0]) and result.stderr.startswith("nzip: unknown codec 'foo'")
    result = run("decompress", "nosuch.nzip")
    assert result.exit_code == 1 and result.stderr.strip() == "nzip: nosuch.nzip: no such file or directory"
    (workdir / "cut.png").write_bytes((workdir / "small.png").read_bytes()[:60])
    result = run("compress", "cut.png")
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("nzip: cut.png: ") and "Errno" not in lines[0]


def test_usage_errors_found_after_parsing_exit_2_before_any_file(workdir):
    """Checks that need several options together (-c with -o, --try without auto) are usage
    errors like click's own: exit 2, the reason, nothing written (the executable prints them
    as one line: the test above)."""
    for args, reason in ((["-c", "small.png", "hopper.png"], "-c takes exactly one input"),
                         (["-m", "png", "--try", "jxl", "small.png"], "use it with -m auto"),
                         (["--try", "jxl,nosuch", "small.png"], "auto cannot try 'nosuch'"),
                         (["--try", ",", "small.png"], "at least one codec")):
        result = run("compress", *args)
        assert result.exit_code == 2 and reason in result.stderr.strip().splitlines()[-1], args
        assert "internal error" not in result.stderr and not os.path.exists("small.png.nzip"), args


def test_try_chooses_the_codecs_auto_tries(workdir):
    result = run("compress", "-v", "--try", "png,j2k", "small.png")
    assert result.exit_code == 0 and "auto chose" in result.stderr
    explained = next(line for line in result.stderr.splitlines() if "auto chose" in line)
    tried = {part.split()[0] for part in explained.split(") ", 1)[1].split(", ")}
    assert tried == {"png", "j2k"}
    assert run("decompress", "small.png.nzip", "-o", "back.png").exit_code == 0
    assert _same_pixels("small.png", "back.png")


def test_the_executable_reports_click_usage_errors_in_nzip_style(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "neuralzip.cli", "compress", "--bogus"], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.startswith("nzip: No such option '--bogus'")


def test_bench_reports_per_codec_counts_and_explain_names_the_real_codec(workdir):
    Image.fromarray(smooth_image(8, 8, 1)[:, :, 0]).save("grey.png")
    result = run("bench", "-m", "png,flow", "small.png", "grey.png")
    assert result.exit_code == 0
    assert "bench: flow skips 1 of 2 images (grey.png)" in result.stderr
    table = {line.split("|")[1].strip(): line for line in result.output.splitlines() if line.startswith("| ")}
    assert table["flow"].split("|")[2].strip() == "1" and table["png"].split("|")[2].strip() == "2"
    assert " 0.0 |" not in result.output  # rates keep their precision
    result = run("explain", "small.png", "-o", "bits2.png")
    assert result.exit_code == 0 and "model code length" in result.stderr
