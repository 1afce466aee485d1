"""Fit files: canonical JSON round trips and errors, torch-imfit .txt against the seed's own formula."""

import json
import logging
import math
import os
import re

import numpy as np
import pytest
import torch

from imfit_engine.core.model import COLUMNS, WaveletSet
from imfit_engine.core.render import render_reference, to_image
from imfit_engine.errors import ImfitError
from imfit_engine.io import formats
from imfit_engine.io.atomic import atomic_path, write_atomic

# ----------------------------------------------------------------------------------------
# Independent oracle: torch-imfit's renderer written from its formula, in numpy


def seed_image(rows, width, height):
    """torch-imfit's image of .txt rows on a width x height raster (row 0 on top)."""
    ys, xs = np.linspace(-1, 1, height), np.linspace(-1, 1, width)
    y, x = np.meshgrid(ys, xs, indexing="ij")
    out = np.zeros((height, width, 3))
    for u, v, theta, rel_sigma, gamma, rel_freq, *rest in np.asarray(rows, dtype=np.float64):
        psi, amp = rest[:3], rest[3:]
        dx, dy = x - u, y - v
        t = 2 * math.pi * theta
        xr = dx * math.cos(t) + dy * math.sin(t)
        yr = -dx * math.sin(t) + dy * math.cos(t)
        g = np.exp(-(xr**2) / (2 * rel_sigma**2) - yr**2 / (2 * gamma**2))
        f = 2 * math.pi / math.exp(rel_freq)
        for c in range(3):
            out[..., c] += amp[c] * g * np.cos(f * xr + 2 * math.pi * psi[c])
    return np.clip(out, -1, 1) * 0.5 + 0.5


def our_image(ws: WaveletSet, width, height):
    params = torch.from_numpy(np.asarray(ws.params, dtype=np.float64))
    return to_image(render_reference(params, ws.aspect, width, height)).numpy()


def txt_text(rows):
    return "".join(",".join("%f" % v for v in row) + "\n" for row in rows)  # noqa: UP031 (torch-imfit writes %f)


# u, v, theta, rel_sigma, gamma, rel_freq, psi RGB, amp RGB; amplitudes small enough not to clamp
ROTATED_ROWS = [
    [0.10, -0.20, 0.130, 0.30, 0.45, -1.20, 0.10, -0.30, 0.45, 0.25, 0.10, 0.20],
    [-0.50, 0.40, -0.350, 0.20, 0.15, -2.00, -0.20, 0.00, 0.30, 0.15, 0.25, 0.05],
    [0.60, 0.55, 0.700, 0.12, 0.40, -1.60, 0.50, 0.25, -0.10, 0.20, 0.20, 0.20],
    [-0.30, -0.65, 1.450, 0.50, 0.25, -0.70, 0.00, 0.40, -0.45, 0.10, 0.05, 0.25],
]
AXIS_ALIGNED_ROWS = [
    [0.10, -0.20, 0.00, 0.30, 0.45, -1.20, 0.10, -0.30, 0.45, 0.25, 0.10, 0.20],
    [-0.50, 0.40, 0.25, 0.20, 0.15, -2.00, -0.20, 0.00, 0.30, 0.15, 0.25, 0.05],
    [0.60, 0.55, -0.25, 0.12, 0.40, -1.60, 0.50, 0.25, -0.10, 0.20, 0.20, 0.20],
    [-0.30, -0.65, 0.50, 0.50, 0.25, -0.70, 0.00, 0.40, -0.45, 0.10, 0.05, 0.25],
]


def random_fit(n=5, width=48, height=32, seed=0):
    rng = np.random.default_rng(seed)
    p = np.empty((n, 12), dtype=np.float32)
    p[:, 0:2] = rng.uniform(0.2, 0.8, (n, 2))
    p[:, 2] = rng.uniform(-3, 3, n)
    p[:, 3:5] = rng.uniform(0.04, 0.2, (n, 2))
    p[:, 5] = rng.uniform(0.08, 0.5, n)
    p[:, 6:9] = rng.uniform(-3, 3, (n, 3))
    p[:, 9:12] = rng.uniform(-0.25, 0.25, (n, 3))
    meta = {
        "source": {"name": "photo é.png"},
        "settings": {"lr": 0.01, "steps": [100, 200], "device": "cpu"},
        "metrics": {"psnr": 23.25, "seconds": 1.5},
    }
    return WaveletSet(p, width, height, meta)


# ----------------------------------------------------------------------------------------
# Canonical JSON


def test_json_round_trip_is_exact_including_meta(tmp_path):
    ws = random_fit()
    ws.params[0, 0] = np.float32(1) / np.float32(3)  # needs all 9 digits
    ws.params[1, 6] = np.float32(1.17549435e-38)  # smallest normal float32 (a phase: no length may be that small)
    path = tmp_path / "deep" / "fit.json"
    formats.save_json(ws, path)
    back = formats.load_json(path)
    assert back.params.dtype == np.float32
    assert np.array_equal(back.params, ws.params)
    assert (back.width, back.height) == (48, 32)
    assert back.meta == {
        "source": {"name": "photo é.png", "width": 48, "height": 32},
        "settings": ws.meta["settings"],
        "metrics": ws.meta["metrics"],
    }
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["format"] == "gabor-imfit" and doc["version"] == 1
    assert doc["columns"] == list(COLUMNS) and len(doc["wavelets"]) == 5
    assert [p.name for p in path.parent.iterdir()] == ["fit.json"]  # no temp file left


def test_json_numpy_settings_and_infinite_metrics_are_written_as_plain_json():
    ws = random_fit(n=0)
    ws.meta["settings"] = {"size": np.int64(256), "lr": np.float64(0.5), "sizes": np.array([1, 2])}
    ws.meta["metrics"] = {"psnr": float("inf")}
    back = formats.parse_json_text(formats.to_json_text(ws), "mem")
    assert back.meta["settings"] == {"size": 256, "lr": 0.5, "sizes": [1, 2]}
    assert back.meta["metrics"] == {"psnr": None}
    assert back.params.shape == (0, 12)


def test_json_columns_in_any_order_load_by_name():
    ws = random_fit()
    doc = json.loads(formats.to_json_text(ws))
    order = np.random.default_rng(3).permutation(12)
    doc["columns"] = [COLUMNS[k] for k in order]
    doc["wavelets"] = [[row[k] for k in order] for row in doc["wavelets"]]
    back = formats.parse_json_text(json.dumps(doc), "reordered.json")
    assert np.array_equal(back.params, ws.params)


def _doc():
    return json.loads(formats.to_json_text(random_fit(n=3)))


def _edited(edit):
    doc = _doc()
    edit(doc)
    return json.dumps(doc)


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            '{\n "format": "gabor-imfit",\n "version": 1,,\n}',
            r"not valid JSON \(line 3, column 15: Expecting property name",
        ),
        (_edited(lambda d: d.update(format="something")), r"not a Gabor ImFit fit .*'something'"),
        ("[1, 2]", "not a Gabor ImFit fit"),
        (
            _edited(lambda d: d.update(version=2)),
            r"written by a newer Gabor ImFit \(format 2\); this version reads format 1: upgrade",
        ),
        (_edited(lambda d: d.update(version="1")), r'"version" must be a whole number'),
        (_edited(lambda d: d.pop("wavelets")), r'the key "wavelets" is missing'),
        (_edited(lambda d: d["source"].pop("height")), r'the key "source.height" is missing'),
        (_edited(lambda d: d["source"].update(width=0)), r"source.width must be a whole number >= 1, found 0"),
        (_edited(lambda d: d["source"].update(height=-4)), r"source.height must be a whole number >= 1, found -4"),
        (_edited(lambda d: d["source"].update(width=12.5)), r"source.width must be a whole number"),
        (_edited(lambda d: d["wavelets"][1].pop()), r"wavelet row 1 must be a list of 12 numbers, found 11 values"),
        (_edited(lambda d: d["wavelets"][2].__setitem__(4, "0.5")), r"wavelet row 2, value 4 is '0.5', not a number"),
        (_edited(lambda d: d["wavelets"][0].__setitem__(3, float("nan"))), r"wavelet row 0, value 3 is nan"),
        (_edited(lambda d: d["wavelets"][1].__setitem__(5, 1e39)), r"wavelet row 1, value 5 is 1e\+39"),
        (
            _edited(lambda d: d.update(columns=list(COLUMNS[:11]) + ["speed"])),
            r'"columns" must name each of u, v, .* once \(missing amp_b; unknown speed\)',
        ),
    ],
)
def test_json_errors_name_the_file_and_the_problem(text, expected):
    with pytest.raises(ImfitError, match=r"^broken\.json: " + expected):
        formats.parse_json_text(text, "broken.json")


def test_json_bad_file_errors_name_the_path(tmp_path):
    with pytest.raises(ImfitError, match=r"cannot read fit file .*nope\.json: no such file"):
        formats.load_json(tmp_path / "nope.json")
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage\x80")
    with pytest.raises(ImfitError, match=r"binary\.json: not a text file"):
        formats.load_json(binary)
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "gabor-imfit", "version": 1 "source": {}}')
    with pytest.raises(ImfitError, match=re.escape(str(bad)) + r": not valid JSON \(line 1, column 40: Expecting ','"):
        formats.load_json(bad)


def test_saving_a_diverged_fit_fails_and_writes_nothing(tmp_path):
    ws = random_fit()
    ws.params[2, 5] = np.nan
    with pytest.raises(ImfitError, match="1 of 5 wavelets have non-finite parameters .*row 2"):
        formats.save_json(ws, tmp_path / "fit.json")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------
# torch-imfit .txt


@pytest.mark.parametrize(
    "rows, width, height",
    [
        (ROTATED_ROWS, 32, 32),  # square: every wavelet converts exactly
        (AXIS_ALIGNED_ROWS, 40, 24),  # non-square: exact for axis-aligned wavelets
        (AXIS_ALIGNED_ROWS, 17, 29),
    ],
)
def test_txt_import_renders_what_the_seed_renders(tmp_path, rows, width, height):
    path = tmp_path / "weights.txt"
    path.write_text(txt_text(rows))
    ws = formats.load_txt(path, width, height)
    assert (ws.width, ws.height) == (width, height) and len(ws) == 4
    assert ws.meta["source"]["name"] == "weights.txt"
    expected = seed_image(np.loadtxt(path, delimiter=","), width, height)
    assert np.abs(expected - 0.5).max() > 0.1  # the wavelets are visible
    assert np.abs(our_image(ws, width, height) - expected).max() <= 1e-5


def test_txt_square_import_uses_the_documented_similarity():
    ws = formats.parse_txt_text(txt_text(ROTATED_ROWS[:1]), "one.txt", 32, 32)
    a = 31 / 64
    u, v, theta, rel_sigma, gamma, rel_freq = ROTATED_ROWS[0][:6]
    p = ws.params[0].astype(np.float64)
    assert p[0] == pytest.approx(a * u + 0.5, abs=1e-6) and p[1] == pytest.approx(0.5 - a * v, abs=1e-6)
    assert math.cos(p[2]) == pytest.approx(math.cos(-2 * math.pi * theta), abs=1e-6)
    assert math.sin(p[2]) == pytest.approx(math.sin(-2 * math.pi * theta), abs=1e-6)
    assert p[3:6] == pytest.approx([a * rel_sigma, a * gamma, a * math.exp(rel_freq)], rel=1e-6)
    assert p[6:9] == pytest.approx(2 * math.pi * np.array(ROTATED_ROWS[0][6:9]), abs=1e-6)
    assert p[9:12] == pytest.approx(ROTATED_ROWS[0][9:12], abs=1e-7)


def test_txt_non_square_import_of_rotated_wavelets_warns_once(caplog):
    with caplog.at_level(logging.WARNING, logger="imfit"):
        formats.parse_txt_text(txt_text(ROTATED_ROWS), "sq.txt", 32, 32)
        formats.parse_txt_text(txt_text(AXIS_ALIGNED_ROWS), "wide-exact.txt", 40, 24)
        assert caplog.records == []
        formats.parse_txt_text(txt_text(ROTATED_ROWS), "wide.txt", 40, 24)
    assert len(caplog.records) == 1
    assert "non-square 40x24" in caplog.text and "approximates the envelopes of its 4 rotated wavelets" in caplog.text


@pytest.mark.parametrize("width, height", [(32, 32), (40, 24)])
def test_txt_export_renders_in_the_seed_as_in_ours_and_reimports(tmp_path, width, height):
    ws = random_fit(n=6, width=width, height=height)
    if width != height:  # only axis-aligned wavelets convert exactly between non-square rasters
        ws.params[:, 2] = np.array([0, 1, 2, -1, -2, 4]) * (math.pi / 2)
    ws.params[1, 5] *= -1  # a negative wavelength is the same wave pointing the other way
    path = tmp_path / "out" / "weights.txt"
    formats.save_txt(ws, path)
    lines = path.read_text().splitlines()
    assert len(lines) == 6
    assert all(re.fullmatch(r"(-?\d+\.\d{6},){11}-?\d+\.\d{6}", line) for line in lines)  # %f, like the seed
    rows = np.loadtxt(path, delimiter=",")
    assert rows[:, 9:12].min() >= 0 and np.abs(rows[:, 6:9]).max() <= 0.5  # |amp|, phase + pi, wrapped psi
    ours = our_image(ws, width, height)
    assert np.abs(ours - 0.5).max() > 0.1
    # %f keeps 6 decimals, so the seed's image of the file differs from ours by that rounding only
    assert np.abs(seed_image(rows, width, height) - ours).max() <= 2e-5
    back = formats.load_txt(path, width, height)
    assert np.abs(our_image(back, width, height) - ours).max() <= 2e-5
    precise = formats.parse_txt_text(formats.to_txt_text(ws, decimals=12), "precise.txt", width, height)
    assert np.abs(our_image(precise, width, height) - ours).max() <= 1e-6


def test_txt_export_on_another_raster_size(tmp_path):
    ws = random_fit(n=4, width=20, height=20)
    path = tmp_path / "big.txt"
    formats.save_params(ws, path, width=64, height=64)
    rows = np.loadtxt(path, delimiter=",")
    assert np.abs(seed_image(rows, 64, 64) - our_image(ws, 64, 64)).max() <= 2e-5


def test_txt_export_clamps_to_the_seed_ranges_with_one_warning(caplog):
    ws = random_fit(n=3, width=32, height=32)
    ws.params[0, 3] = 5.0  # rel_sigma ~ 10 > 1
    ws.params[1, 0] = 3.0  # u far right of the raster
    ws.params[2, 9] = -1.5  # |amp| 1.5 > 1
    with caplog.at_level(logging.WARNING, logger="imfit"):
        text = formats.to_txt_text(ws)
    assert len(caplog.records) == 1
    assert "3 values were outside the ranges" in caplog.text and "u 1, rel_sigma 1, amp_R 1" in caplog.text
    rows = np.array([[float(v) for v in line.split(",")] for line in text.splitlines()])
    assert rows[0, 3] == 1.0 and rows[1, 0] == 1.0 and rows[2, 9] == 1.0


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            txt_text(ROTATED_ROWS[:2]) + "0.1,0.2,0.3\n",
            r"line 3: expected 12 comma-separated numbers .* found 3 fields",
        ),
        (
            txt_text(ROTATED_ROWS[:1]) + txt_text(ROTATED_ROWS[:1]).replace("0.300000", "abc", 1),
            r"line 2: rel_sigma \(field 4\) is 'abc', not a number",
        ),
        ("\n" + txt_text(ROTATED_ROWS[:1]).replace("0.450000", "nan", 1), r"line 2: gamma \(field 5\) is 'nan'"),
        ("u v theta\n", r"line 1: expected 12 comma-separated numbers .* found 1 fields"),
        ("", "no wavelets"),
        ("\n  \n", "no wavelets"),
    ],
)
def test_txt_errors_name_the_file_and_line(text, expected):
    with pytest.raises(ImfitError, match=r"^fit\.txt:? " + expected):
        formats.parse_txt_text(text, "fit.txt", 32, 32)


def test_txt_needs_a_raster_size_of_at_least_two_pixels(tmp_path):
    path = tmp_path / "w.txt"
    path.write_text(txt_text(ROTATED_ROWS))
    with pytest.raises(ImfitError, match="stores no image size; give the width and height"):
        formats.load_params(path)
    with pytest.raises(ImfitError, match="height must be a whole number >= 2, found 1"):
        formats.load_txt(path, 32, 1)


# ----------------------------------------------------------------------------------------
# Dispatch and atomic writes


def test_load_and_save_params_dispatch_on_the_suffix(tmp_path):
    ws = random_fit(n=4, width=32, height=32)
    formats.save_params(ws, tmp_path / "a.JSON")
    assert np.array_equal(formats.load_params(tmp_path / "a.JSON").params, ws.params)
    formats.save_params(ws, tmp_path / "a.txt")
    back = formats.load_params(tmp_path / "a.txt", 32, 32)
    assert np.abs(our_image(back, 32, 32) - our_image(ws, 32, 32)).max() <= 2e-5
    for name in ("a.csv", "noext"):
        with pytest.raises(ImfitError, match=r"unknown fit file type .* Use \.json or \.txt"):
            formats.load_params(tmp_path / name)
        with pytest.raises(ImfitError, match=r"unknown fit file type"):
            formats.save_params(ws, tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.JSON", "a.txt"]


def test_atomic_writes_replace_on_success_and_clean_up_on_failure(tmp_path):
    target = tmp_path / "sub" / "x.png"
    write_atomic(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.parent == target.parent and tmp.suffix == ".png" and tmp != target
            tmp.write_text("half")
            raise RuntimeError("writer failed")
    assert target.read_text() == "old"
    assert os.listdir(target.parent) == ["x.png"]
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new" and os.listdir(target.parent) == ["x.png"]
