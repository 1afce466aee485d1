"""Fuzzing the fit-file parsers and the CLI's argument space (issue 17) with Hypothesis.

Every generated input gives a valid result or one ``ImfitError`` line, never another exception, within a
deadline per example and a memory bound for the whole run.  Derandomized and bounded (~30 s on 2 cores), so CI
sees the same examples every time.
"""

import contextlib
import io
import json
import math
import resource
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from imfit_engine.cli import build_parser, main
from imfit_engine.cli.fit import config_from
from imfit_engine.core import model
from imfit_engine.core.model import COLUMNS
from imfit_engine.errors import ImfitError
from imfit_engine.io import formats

BOUNDED = settings(
    derandomize=True, deadline=3000, max_examples=150, suppress_health_check=[HealthCheck.too_slow], database=None
)
MAX_RSS_BYTES = 3 << 30  # the pytest process after all of them

hostile_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-45, 1e-20, 1e-9, 1e6, 1e30, 3.4e38, 1e308, 1.0000001]),
    st.floats(-2, 2),
)
hostile_ints = st.one_of(st.integers(-(10**15), 10**15), st.sampled_from([0, 1, 2, 1 << 20, (1 << 20) + 1, 10**12]))
json_values = st.recursive(
    st.none() | st.booleans() | hostile_ints | hostile_floats | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def rows(draw):
    """A plausible wavelet with, mostly, one hostile value in it."""
    row = [draw(st.floats(-1, 1)) for _ in range(12)]
    row[3:6] = [draw(st.floats(0.001, 0.5)) for _ in range(3)]
    if draw(st.booleans()):
        row[draw(st.integers(0, 11))] = draw(hostile_floats)
    return row


def _one_line(error: ImfitError) -> None:
    text = str(error)
    assert text and "\n" not in text and "Traceback" not in text


def _valid(ws) -> None:
    assert ws.params.dtype == np.float32 and ws.params.shape[1] == len(COLUMNS)
    assert model.invalid_value(ws.params) is None
    assert 1 <= ws.width <= 1 << 20 and 1 <= ws.height <= 1 << 20


@st.composite
def fit_docs(draw):
    """Mostly well-formed fit documents with hostile values, now and then a hostile structure."""
    row = rows() | st.lists(hostile_floats | hostile_ints, min_size=12, max_size=12)
    doc = {
        "format": draw(st.sampled_from(["gabor-imfit", "gabor-imfit", "other", None])),
        "version": draw(st.sampled_from([1, 1, 1, 0, 2, "1", 1.0])),
        "source": {"width": draw(hostile_ints | hostile_floats), "height": draw(hostile_ints | hostile_floats)},
        "columns": draw(st.sampled_from([list(COLUMNS), list(COLUMNS)[::-1], list(COLUMNS)[:11], ["u"] * 12])),
        "wavelets": draw(st.lists(row, max_size=6)),
    }
    for key in draw(st.lists(st.sampled_from(sorted(doc)), max_size=2)):
        doc[key] = draw(json_values)
    return doc


@BOUNDED
@given(fit_docs())
def test_json_parser_gives_a_valid_fit_or_one_line(doc):
    text = json.dumps(doc, allow_nan=True)
    try:
        ws = formats.parse_json_text(text, "fuzz.json")
    except ImfitError as e:
        _one_line(e)
        return
    _valid(ws)
    back = formats.parse_json_text(formats.to_json_text(ws), "again.json")  # what loads, saves and loads
    assert np.array_equal(back.params, ws.params)


@BOUNDED
@given(st.text(max_size=300))
def test_json_parser_on_any_text(text):
    try:
        _valid(formats.parse_json_text(text, "fuzz.json"))
    except ImfitError as e:
        _one_line(e)


_fields = st.one_of(
    hostile_floats.map(repr), hostile_ints.map(str), st.sampled_from(["", " ", "nan", "1e999", "0x10", "1_0", "--1"])
)


@BOUNDED
@given(
    st.lists(st.lists(_fields, min_size=11, max_size=13).map(",".join), max_size=6).map("\n".join)
    | st.text(max_size=200),
    hostile_ints,
    hostile_ints,
)
def test_txt_parser_gives_a_valid_fit_or_one_line(text, width, height):
    try:
        ws = formats.parse_txt_text(text, "fuzz.txt", width, height)
    except ImfitError as e:
        _one_line(e)
        return
    _valid(ws)
    try:  # what loads converts back to a .txt our reader takes, or says why not
        again = formats.to_txt_text(ws)
    except ImfitError as e:
        _one_line(e)
        return
    assert "nan" not in again and "inf" not in again
    _valid(formats.parse_txt_text(again, "again.txt", ws.width, ws.height))


def _run(argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:  # argparse: a usage line and one error line
            code = e.code
    return code, err.getvalue()


numbers = st.one_of(
    st.sampled_from(["0", "-1", "1", "7", "nan", "inf", "1e30", "-1e30", "abc", "", "1048577", "100000000"]),
    st.integers(-5, 200).map(str),
)


@settings(BOUNDED, max_examples=40)
@given(
    st.sampled_from(["render", "convert", "export"]),
    st.lists(rows(), max_size=4),
    st.integers(1, 4096),
    st.integers(1, 4096),
    st.lists(
        st.tuples(st.sampled_from(["--width", "--height", "--source-width", "--source-height"]), numbers), max_size=3
    ),
    st.sampled_from([".json", ".txt"]),
)
def test_file_commands_give_a_result_or_one_line(command, rows, width, height, options, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "in.json"
        src.write_text(
            json.dumps(
                {
                    "format": "gabor-imfit",
                    "version": 1,
                    "source": {"width": width, "height": height},
                    "columns": list(COLUMNS),
                    "wavelets": rows,
                },
                allow_nan=True,
            )
        )
        out = tmp / f"out{suffix}"
        argv = {
            "render": ["render", src, "--width", "16", "-o", tmp / "out.png"],
            "convert": ["convert", src, out],
            "export": ["export", src, "--uniforms", tmp / "u.txt", "--glsl", tmp / "s.glsl"],
        }[command]
        if command == "convert" and suffix == ".txt":
            argv += ["--width", "32"]
        for flag, value in options:
            if command == "render" or flag in ("--source-width", "--source-height") and command == "export":
                argv += [flag, value]
        code, err = _run([*argv, "--max-memory", "256M"])
        event(f"{command} exit {code}")
        assert "Traceback" not in err
        assert code in (0, 2), (code, err)
        if code == 2:
            assert err.strip().splitlines()[-1].startswith(("imfit: error: ", "imfit ")), err
        elif command == "convert":  # what convert writes, our reader loads
            _valid(formats.load_params(out, 32, 32 if suffix == ".txt" else None))
        for leftover in tmp.glob(".*"):  # no temp file of an atomic write is left behind
            raise AssertionError(f"left behind: {leftover.name}")


fit_flags = ["--num-gabors", "--size", "--iterations", "--rescales", "--iter-multiple", "--global-lr", "--gamma"]
fit_flags += ["--l1", "--gradient", "--sobel", "--mutation-scale", "--time-budget", "--seed", "--keyframes"]


@settings(BOUNDED, max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(fit_flags), numbers), max_size=5))
def test_fit_arguments_give_a_valid_config_or_one_line(options):
    """The fit's whole argument space is checked before any image is read (a fit itself is not run here)."""
    argv = ["fit", "x.png", *[str(part) for option in options for part in option]]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as e:
            assert e.code == 2 and "Traceback" not in err.getvalue()
            return
    try:
        config = config_from(args)
    except ImfitError as e:
        _one_line(e)
        return
    r = config.rescales
    assert all(math.isfinite(v) for v in (config.lr, config.gamma, config.mutation_scale, config.iter_multiple))
    assert config.iterations * (1 + config.iter_multiple * r * (r + 1) / 2) <= 10_000_000
    assert 1 <= config.num_wavelets <= 1 << 20 and 0 <= r <= 6


def test_the_fuzzing_stayed_within_its_memory():
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 < MAX_RSS_BYTES
