"""`imfit` end to end: every mode on tiny inputs, render/convert, and every bad input."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from imfit_engine.cli import main
from imfit_engine.io.formats import load_json
from support import DATA, REPO, psnr

FAST = ["--size", "24", "--num-gabors", "8", "--iterations", "5", "--rescales", "0"]


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.fixture
def frames(tmp_path):
    """Three 36x24 frames of a slow pan over a real photo, plus a weight folder."""
    src = Image.open(DATA / "chelsea.png").convert("RGB")
    folder = tmp_path / "clip" / "images"
    weights = tmp_path / "clip" / "weights"
    folder.mkdir(parents=True)
    weights.mkdir()
    for k in range(3):
        src.crop((40 + 3 * k, 30, 112 + 3 * k, 78)).resize((36, 24), Image.LANCZOS).save(folder / f"f{k:04d}.png")
        Image.new("L", (36, 24), 255).save(weights / f"f{k:04d}-wt.png")
    return folder


def test_fit_image_writes_all_outputs(tmp_path, capsys):
    code, out, _ = run(
        ["fit", str(DATA / "coffee.png"), *FAST, "--format", "both", "--output-dir", str(tmp_path)], capsys
    )
    assert code == 0
    assert "PSNR" in out and " s " in out
    ws = load_json(tmp_path / "coffee.json")
    assert (ws.width, ws.height, len(ws)) == (192, 128, 8)
    assert (tmp_path / "coffee.txt").read_text().count("\n") == 8
    assert Image.open(tmp_path / "coffee.png").size == (24, 16)
    assert not list(tmp_path.glob("*.tmp*"))


def test_fit_folder_and_weight_folder(frames, tmp_path, capsys):
    out_dir = tmp_path / "out"
    code, out, _ = run(
        [
            "fit",
            str(frames),
            "--mode",
            "folder",
            "--weight",
            str(frames.parent / "weights"),
            *FAST,
            "--output-dir",
            str(out_dir),
        ],
        capsys,
    )
    assert code == 0 and out.count("PSNR") == 3
    assert sorted(p.name for p in out_dir.glob("*.json")) == ["f0000.json", "f0001.json", "f0002.json"]


def test_video_mode_warm_starts(frames, tmp_path, capsys):
    """Frames 1 and 2 start from the previous frame (cold start every 2): their wavelets stay close."""
    out_dir = tmp_path / "video"
    code, _, _ = run(
        ["fit", str(frames), "--mode", "video", "--keyframes", "2", *FAST, "--output-dir", str(out_dir)], capsys
    )
    assert code == 0
    p = [load_json(out_dir / f"f{k:04d}.json").params for k in range(3)]
    warm = np.abs(p[1][:, :2] - p[0][:, :2]).mean()  # frame 1 warm-started from frame 0
    cold = np.abs(p[2][:, :2] - p[1][:, :2]).mean()  # frame 2 is a keyframe: fresh start
    assert warm < cold


def test_vm_mode(frames, tmp_path, capsys):
    second = frames.parent.parent / "clip2"
    shutil.copytree(frames.parent, second)
    out_dir = tmp_path / "vm"
    code, out, _ = run(["fit", str(frames.parent.parent), "--mode", "vm", *FAST, "--output-dir", str(out_dir)], capsys)
    assert code == 0 and sum(line.startswith("frame ") for line in out.splitlines()) == 6
    assert len(list((out_dir / "clip").glob("*.json"))) == 3 and len(list((out_dir / "clip2").glob("*.json"))) == 3


def test_render_and_convert_round_trip(tmp_path, capsys):
    run(
        [
            "fit",
            str(DATA / "astronaut.png"),
            "--size",
            "32",
            "--num-gabors",
            "16",
            "--iterations",
            "10",
            "--output-dir",
            str(tmp_path),
        ],
        capsys,
    )
    code, _, _ = run(
        ["render", str(tmp_path / "astronaut.json"), "--width", "96", "-o", str(tmp_path / "big.png")], capsys
    )
    assert code == 0 and Image.open(tmp_path / "big.png").size == (96, 96)
    code, _, _ = run(
        ["convert", str(tmp_path / "astronaut.json"), str(tmp_path / "a.txt"), "--width", "32", "--height", "32"],
        capsys,
    )
    assert code == 0
    code, _, _ = run(
        [
            "render",
            str(tmp_path / "a.txt"),
            "--source-width",
            "32",
            "--source-height",
            "32",
            "--width",
            "32",
            "-o",
            str(tmp_path / "from_txt.png"),
        ],
        capsys,
    )
    assert code == 0
    a = np.asarray(Image.open(tmp_path / "astronaut.png"), np.float32) / 255
    b = np.asarray(Image.open(tmp_path / "from_txt.png"), np.float32) / 255
    assert psnr(a, b) > 40  # the seed format keeps 6 decimals: the same picture


def test_console_script_and_exit_code(tmp_path):
    """The real process: a user error exits 2 with one line and no traceback, and writes nothing."""
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    exe = shutil.which("imfit", path=str(REPO / ".venv" / "bin")) or sys.executable
    cmd = [exe] if exe.endswith("imfit") else [exe, "-m", "imfit_engine"]
    proc = subprocess.run([*cmd, "fit", str(bad), "--output-dir", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "bad.png" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def _png16(path):
    arr = (np.asarray(Image.open(DATA / "brick.png").convert("L"), np.uint16) * 257)[:24, :24]
    Image.fromarray(arr).save(path)


BAD_INPUTS = {
    # name: (setup(tmp) -> argv, expected code, words that must be in stderr)
    "corrupt image": (
        lambda t: (t / "x.png").write_bytes(b"\x89PNG garbage") and ["fit", str(t / "x.png")],
        2,
        ["x.png", "cannot read"],
    ),
    "missing image": (lambda t: ["fit", str(t / "nope.png")], 2, ["nope.png"]),
    "missing folder": (lambda t: ["fit", str(t / "nofolder"), "--mode", "folder"], 2, ["nofolder"]),
    "empty folder": (lambda t: (t / "empty").mkdir() or ["fit", str(t / "empty"), "--mode", "video"], 2, ["empty"]),
    "all-black weight": (
        lambda t: (
            Image.new("L", (24, 16)).save(t / "w.png")
            or ["fit", str(DATA / "coffee.png"), "--weight", str(t / "w.png")]
        ),
        2,
        ["w.png", "all black"],
    ),
    "bad txt line": (
        lambda t: (
            (t / "p.txt").write_text("0,0,0,0.1,0.1,0,0,0,0,0.5,0.5,0.5\n1,2,3\n")
            and [
                "render",
                str(t / "p.txt"),
                "--width",
                "8",
                "--source-width",
                "8",
                "--source-height",
                "8",
                "-o",
                str(t / "r.png"),
            ]
        ),
        2,
        ["p.txt", "line 2"],
    ),
    "malformed json": (
        lambda t: (
            (t / "p.json").write_text('{"format": "gabor-imfit", "version": 1,')
            and ["render", str(t / "p.json"), "--width", "8", "-o", str(t / "r.png")]
        ),
        2,
        ["p.json"],
    ),
    "future version": (
        lambda t: (
            (t / "p.json").write_text(json.dumps({"format": "gabor-imfit", "version": 99}))
            and ["render", str(t / "p.json"), "--width", "8", "-o", str(t / "r.png")]
        ),
        2,
        ["p.json", "99"],
    ),
    "zero-size image": (lambda t: _zero_png(t / "z.png") or ["fit", str(t / "z.png")], 2, ["z.png"]),
    "folder in image mode": (lambda t: ["fit", str(t)], 2, ["folder"]),
}


def _zero_png(path):
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_one_clear_message(case, tmp_path, capsys):
    setup, expected, words = BAD_INPUTS[case]
    argv = setup(tmp_path)
    out_dir = tmp_path / "out"
    if argv[0] == "fit":
        argv = [*argv, *FAST, "--output-dir", str(out_dir)]
    code, _, err = run(argv, capsys)
    assert code == expected
    line = [ln for ln in err.splitlines() if ln.startswith("imfit: error:")]
    assert len(line) == 1, err
    for w in words:
        assert w in line[0], line[0]
    assert not out_dir.exists() or not any(out_dir.iterdir())
    assert not (tmp_path / "r.png").exists()


@pytest.mark.parametrize("kind", ["16-bit", "greyscale", "rgba", "weight-size"])
def test_accepted_odd_inputs(kind, tmp_path, capsys):
    """Inputs that are handled (with a note where something was changed) rather than refused."""
    path = tmp_path / "in.png"
    extra = []
    if kind == "16-bit":
        _png16(path)
    elif kind == "greyscale":
        Image.open(DATA / "brick.png").convert("L").resize((24, 24)).save(path)
    elif kind == "rgba":
        im = Image.open(DATA / "coffee.png").convert("RGBA").resize((36, 24))
        alpha = Image.new("L", (36, 24), 0)
        alpha.paste(255, (0, 0, 18, 24))
        im.putalpha(alpha)
        im.save(path)
    else:
        Image.open(DATA / "coffee.png").resize((36, 24)).save(path)
        Image.new("L", (10, 10), 255).save(tmp_path / "w.png")
        extra = ["--weight", str(tmp_path / "w.png")]
    code, out, err = run(["fit", str(path), *extra, *FAST, "--output-dir", str(tmp_path / "o")], capsys)
    assert code == 0 and "PSNR" in out
    if kind == "weight-size":
        assert "10x10" in err and "warning" in err
    assert (tmp_path / "o" / "in.json").exists()


def test_option_validation(capsys):
    code, _, err = run(["fit", str(DATA / "coffee.png"), "--num-gabors", "0"], capsys)
    assert code == 2 and "--num-gabors" in err


def test_export_writes_each_target(tmp_path, capsys):
    """The export subcommand end to end (the shaders' own numbers are checked in test_shaders)."""
    run(["fit", str(DATA / "brick.png"), *FAST, "--output-dir", str(tmp_path)], capsys)
    outs = {"--glsl": "f.glsl", "--uniforms": "u.txt", "--texture": "t.exr", "--osl": "s.osl"}
    argv = ["export", str(tmp_path / "brick.json")]
    for flag, name in outs.items():
        argv += [flag, str(tmp_path / name)]
    code, out, _ = run(argv, capsys)
    assert code == 0 and out.count("8 wavelets") == 4
    assert all((tmp_path / name).stat().st_size > 0 for name in outs.values())
    code, _, err = run(["export", str(tmp_path / "brick.json"), "--texture", str(tmp_path / "t.jpg")], capsys)
    assert code == 2 and "t.jpg" in err and not (tmp_path / "t.jpg").exists()
