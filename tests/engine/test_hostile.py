"""Careless and hostile input (issue 17): every command stays within a memory cap and a timeout, and ends with
a result or one line ``imfit: error: ...`` (exit 2), ``imfit: interrupted`` (130), never a traceback, and
writes nothing invalid.

The CLI runs as a real process under an address-space cap (RLIMIT_AS), so a regression fails here instead of
taking the machine down.
"""

import json
import math
import os
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from imfit_engine.core.model import COLUMNS, WaveletSet
from imfit_engine.io import formats
from imfit_engine.worker.protocol import decode_line, encode_message
from support import DATA, REPO

CAP = 3 << 30  # address space of one CLI run: torch maps ~1 GB, the rest is work
ROW = [0.5, 0.5, 0.3, 0.1, 0.1, 0.2, 0.0, 0.0, 0.0, 0.5, 0.5, 0.5]


def _cap():
    resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def imfit(*args, timeout=120):
    """``python -m imfit_engine ARGS`` under the cap; the CompletedProcess."""
    proc = subprocess.run(
        [sys.executable, "-m", "imfit_engine", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_cap,
        env=_env(),
        cwd=REPO,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def one_error(proc, *words):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imfit: error: "), proc.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def fit_json(path, rows, width=64, height=48):
    doc = {
        "format": "gabor-imfit",
        "version": 1,
        "source": {"width": width, "height": height, "name": ""},
        "columns": list(COLUMNS),
        "wavelets": rows,
    }
    path.write_text(json.dumps(doc))
    return path


# 1 ------------------------------------------------------------------------------------------------------


def test_render_of_a_fit_with_an_absurd_source_size_is_refused_before_allocating(tmp_path):
    """A 3 KB fit whose source is 1 x 10^12 drove `render --width 32` to 17.8 GB (the height follows the aspect)."""
    huge = fit_json(tmp_path / "huge.json", [ROW] * 20, width=1, height=10**12)
    one_error(imfit("render", huge, "--width", 32, "-o", tmp_path / "o.png"), "huge.json", "source.height", "<=")
    # the largest source size allowed still asks for 32 x 33.5 million pixels: the budget says no, and how
    tall = fit_json(tmp_path / "tall.json", [ROW] * 20, width=1, height=1 << 20)
    one_error(imfit("render", tall, "--width", 32, "-o", tmp_path / "o.png"), "32x33554432", "--max-memory")
    # and an explicit size past the budget too
    ok = fit_json(tmp_path / "ok.json", [ROW])
    one_error(
        imfit("render", ok, "--width", 100000, "--height", 100000, "--max-memory", "1G", "-o", tmp_path / "o.png"),
        "100000x100000",
        "1.0 GB",
        "--max-memory",
    )
    assert not list(tmp_path.glob("*.png"))


# 2 ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "column, value, words",
    [
        ("sigma", 0.0, ["row 0", "sigma", "below"]),
        ("gamma", 1e-20, ["row 0", "gamma", "below"]),
        ("sigma", 1e30, ["row 0", "sigma", "above"]),
        ("wavelength", 0.0, ["row 0", "wavelength"]),
    ],
)
def test_convert_refuses_lengths_the_model_cannot_hold_and_writes_nothing(tmp_path, column, value, words):
    """These wrote `nan` into a torch-imfit .txt with exit 0 (which our reader then rejected)."""
    row = list(ROW)
    row[COLUMNS.index(column)] = value
    src = fit_json(tmp_path / "bad.json", [ROW, row][::-1])
    one_error(imfit("convert", src, tmp_path / "out.txt"), "bad.json", *words)
    assert list(tmp_path.iterdir()) == [src]


def test_convert_writes_a_readable_txt_for_thin_and_wide_envelopes(tmp_path):
    """Thin rotated envelopes on a non-square raster gave sqrt(-0) = nan; in range, they now convert."""
    rows = [list(ROW) for _ in range(3)]
    rows[0][COLUMNS.index("sigma")] = 1e-8
    rows[1][COLUMNS.index("gamma")] = 1e5
    rows[2][COLUMNS.index("wavelength")] = -1e-6
    src = fit_json(tmp_path / "thin.json", rows)
    proc = imfit("convert", src, tmp_path / "out.txt")
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "out.txt").read_text()
    assert "nan" not in text and "inf" not in text
    assert len(formats.load_txt(tmp_path / "out.txt", 64, 48)) == 3


def test_convert_of_a_fit_without_wavelets_writes_no_empty_txt(tmp_path):
    src = fit_json(tmp_path / "empty.json", [])
    one_error(imfit("convert", src, tmp_path / "out.txt"), "out.txt", "no wavelets")
    assert not (tmp_path / "out.txt").exists()


# 3 ------------------------------------------------------------------------------------------------------


def test_fit_with_ten_million_wavelets_is_refused_in_words(tmp_path):
    """It grew past 8 GB, then died with a 40-line allocator traceback."""
    start = time.perf_counter()
    proc = imfit("fit", DATA / "coffee.png", "--num-gabors", 10_000_000, "--output-dir", tmp_path / "o")
    one_error(proc, "--num-gabors", "1048576")
    assert time.perf_counter() - start < 60 and not (tmp_path / "o").exists()
    # within the bound but past the memory budget: the estimate says so before fitting
    proc = imfit("fit", DATA / "coffee.png", "--num-gabors", 1 << 20, "--max-memory", "512M", "--output-dir", tmp_path)
    one_error(proc, "1048576 wavelets", "--num-gabors", "--max-memory")


# 4 ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """A ~200 KB 12000 x 12000 paletted PNG (past pillow's decompression-bomb warning)."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    img = Image.new("P", (12000, 12000))
    img.putpalette([(7 * i) % 256 for i in range(768)])
    img.paste(9, (1000, 1000, 5000, 9000))
    img.save(path)
    return path


def test_a_huge_paletted_png_is_shrunk_while_decoding(bomb, tmp_path):
    """It became 12000^2 float32 before it was shrunk (5.3 GB); now it is box-reduced first (~1 GB here)."""
    fast = ["--size", 32, "--num-gabors", 8, "--iterations", 2, "--rescales", 0]
    proc = imfit("fit", bomb, *fast, "--output-dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "DecompressionBomb" not in proc.stderr and proc.stderr.strip() == ""
    ws = formats.load_json(tmp_path / "bomb.json")
    assert (ws.width, ws.height) == (12000, 12000)  # the file's size, not the decoded one
    assert ws.meta["metrics"]["train_width"] == 32
    # and within a budget too small for the decode, it is refused from the header alone
    one_error(imfit("fit", bomb, "--max-memory", "256M", "--output-dir", tmp_path / "x"), "bomb.png", "12000x12000")


def test_a_shrunk_image_keeps_its_weight_silent(tmp_path):
    """A weight of the image's own size is not "another size" when the image was shrunk on decode."""
    Image.new("RGB", (6000, 3000), (200, 90, 30)).save(tmp_path / "big.png")
    Image.new("L", (6000, 3000), 255).save(tmp_path / "w.png")
    proc = imfit(
        "fit", tmp_path / "big.png", "--weight", tmp_path / "w.png", "--size", 24, "--num-gabors", 4,
        "--iterations", 2, "--rescales", 0, "--output-dir", tmp_path / "o",
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr
    assert formats.load_json(tmp_path / "o" / "big.json").width == 6000


# 5 ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flag, value, words",
    [
        ("--rescales", 30, ["--rescales", "between 0 and 6"]),
        ("--gamma", "nan", ["--gamma", "finite"]),
        ("--mutation-scale", "1e30", ["--mutation-scale", "at most 10"]),
        ("--iterations", 10**9, ["--iterations", "between 0 and 1000000"]),
    ],
)
def test_fit_settings_out_of_range_are_refused_at_once(tmp_path, flag, value, words):
    """--rescales 30 ran effectively forever; --gamma nan and --mutation-scale 1e30 were accepted silently."""
    start = time.perf_counter()
    one_error(imfit("fit", DATA / "coffee.png", flag, value, "--output-dir", tmp_path / "o"), *words)
    assert time.perf_counter() - start < 60 and not (tmp_path / "o").exists()


def test_levels_that_add_up_to_days_are_refused(tmp_path):
    proc = imfit("fit", DATA / "coffee.png", "--iterations", 900000, "--rescales", 6, "--iter-multiple", 10)
    one_error(proc, "iterations", "--iter-multiple")


# 6 ------------------------------------------------------------------------------------------------------


def _cap_with_ctrl_c():
    """The memory cap, and SIGINT back to its default: a process started from a background job (CI's, say)
    inherits SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    _cap()
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_during_start_up_is_one_line_and_130(tmp_path):
    """Ctrl-C while torch imports printed a KeyboardInterrupt traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "imfit_engine", "fit", str(DATA / "coffee.png"), "--output-dir", str(tmp_path)],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_cap_with_ctrl_c,
        env=_env(),
    )
    time.sleep(0.4)  # inside the torch import (seconds)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, err)
    assert err.strip().splitlines()[-1] == "imfit: interrupted" and "Traceback" not in err, err


# 7 ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["fit", "render", "weight"])
def test_a_fifo_is_refused_instead_of_hanging(tmp_path, command):
    fifo = tmp_path / ("in.png" if command != "render" else "in.json")
    os.mkfifo(fifo)
    argv = {
        "fit": ["fit", fifo, "--output-dir", tmp_path / "o"],
        "render": ["render", fifo, "--width", 8, "-o", tmp_path / "o.png"],
        "weight": ["fit", DATA / "coffee.png", "--weight", fifo, *"--iterations 1 --rescales 0".split()],
    }[command]
    one_error(imfit(*argv, timeout=60), str(fifo), "FIFO", "not a regular file")


# 8 ------------------------------------------------------------------------------------------------------


def _worker(job_path):
    proc = subprocess.run(
        [sys.executable, "-u", "-m", "imfit_engine.worker", "run", str(job_path)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_cap,
        env=_env(),
        stdin=subprocess.DEVNULL,
    )
    strict = [json.loads(line[len("@imfit ") :], parse_constant=pytest.fail) for line in proc.stdout.splitlines()]
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc, strict


@pytest.mark.parametrize(
    "change, words",
    [
        ({"config": {"iterations": "100"}}, ["iterations", "whole number"]),
        ({"config": {"lr": "fast"}}, ["lr", "finite number"]),
        ({"preview_seconds": "soon"}, ["preview_seconds"]),
        ({"output_dir": "FILE"}, ["is a file"]),
        ({"image": 42}, ["image"]),
        ({"sequence": {"frames": [{"number": "x"}]}, "image": None}, ["sequence job has bad frames"]),
    ],
)
def test_worker_classifies_malformed_job_values_as_user_errors(tmp_path, change, words):
    """Strings for numbers and an output_dir naming a file were internal errors with a traceback."""
    (tmp_path / "FILE").write_text("not a folder")
    job = {"kind": "fit", "image": str(DATA / "coffee.png"), "output_dir": str(tmp_path / "out"), "config": {}}
    job.update(change)
    if job.get("output_dir") == "FILE":
        job["output_dir"] = str(tmp_path / "FILE")
    (tmp_path / "job.json").write_text(json.dumps(job))
    proc, messages = _worker(tmp_path / "job.json")
    assert proc.returncode == 1
    error = messages[-1]
    assert error["type"] == "error" and error["kind"] == "user", error
    for word in words:
        assert word in error["message"], (word, error)


def test_protocol_lines_are_standard_json():
    """A NaN PSNR went out as `NaN`, which strict JSON parsers reject; it is null, read back as NaN."""
    line = encode_message("result", psnr=math.nan, seconds=math.inf, flicker={"x": -math.inf}, wavelets=3)
    doc = json.loads(line[len("@imfit ") :], parse_constant=pytest.fail)
    assert doc["psnr"] is None and doc["flicker"] == {"x": None} and doc["wavelets"] == 3
    message = decode_line(line)
    assert math.isnan(message["psnr"]) and math.isnan(message["seconds"])


# 9 ------------------------------------------------------------------------------------------------------


def test_converting_a_fit_made_here_warns_of_no_clamping(tmp_path):
    """The fitter caps amplitudes at 1 in float32; 1.0000001 after rounding is no clamp worth a warning."""
    row = list(ROW)
    row[COLUMNS.index("amp_g")] = float(np.float32(1.0000001))
    src = fit_json(tmp_path / "made.json", [row], 64, 64)
    proc = imfit("convert", src, tmp_path / "made.txt", "--width", 64, "--height", 64)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    # a real clamp still warns
    ws = WaveletSet(np.array([row], np.float32), 64, 64)
    ws.params[0, COLUMNS.index("amp_g")] = 1.5
    formats.save_json(ws, tmp_path / "loud.json")
    proc = imfit("convert", tmp_path / "loud.json", tmp_path / "loud.txt")
    assert proc.returncode == 0 and "amp_G 1" in proc.stderr
