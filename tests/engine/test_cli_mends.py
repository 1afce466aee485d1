"""Small interface mends: `imfit render` of a torch-imfit .txt without its source size renders on the raster
asked for, as torch-imfit does; `imfit stylize --iterations` (like fit and expand; --steps still works)."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from imfit_engine.cli import build_parser, main
from support import DATA


def torch_imfit_render(rows: np.ndarray, width: int, height: int) -> np.ndarray:
    """torch-imfit's own renderer (FACTS.md): linspace(-1, 1) pixel centres, no aspect, sum clamped, *.5+.5."""
    y, x = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    out = np.zeros((height, width, 3))
    for u, v, theta, sigma, gamma, freq, *rest in rows:
        psi, amp = rest[:3], rest[3:]
        t = 2 * math.pi * theta
        dx, dy = x - u, y - v
        xr, yr = dx * math.cos(t) + dy * math.sin(t), -dx * math.sin(t) + dy * math.cos(t)
        g = np.exp(-(xr**2) / (2 * sigma**2) - yr**2 / (2 * gamma**2))
        f = 2 * math.pi / math.exp(freq)
        for c in range(3):
            out[..., c] += amp[c] * g * np.cos(f * xr + 2 * math.pi * psi[c])
    return np.clip(out, -1, 1) * 0.5 + 0.5


def seed_rows(rng, n: int, theta) -> np.ndarray:
    """torch-imfit .txt rows (its columns, its ranges)."""
    return np.column_stack(
        [
            rng.uniform(-0.8, 0.8, (n, 2)),
            theta,
            rng.uniform(0.05, 0.3, n),
            rng.uniform(0.05, 0.3, n),
            rng.uniform(-1.5, 0.0, n),
            rng.uniform(-0.5, 0.5, (n, 3)),
            rng.uniform(0.0, 0.4, (n, 3)),
        ]
    )


def test_render_txt_on_the_raster_asked_for(tmp_path, capsys):
    rng = np.random.default_rng(3)
    n = 12
    # axis-aligned: the conversion is exact on a non-square raster too (rotated ones are approximated there)
    rows = seed_rows(rng, n, rng.choice([0.0, 0.25, -0.25, 0.5], n))
    txt = tmp_path / "seed.txt"
    txt.write_text("".join(",".join(f"{v:f}" for v in row) + "\n" for row in rows))
    rows = np.round(rows, 6)  # what %f keeps
    width, height = 40, 24
    assert (
        main(["render", str(txt), "--width", str(width), "--height", str(height), "-o", str(tmp_path / "a.png")]) == 0
    )
    assert (
        main(
            [
                "render",
                str(txt),
                "--width",
                str(width),
                "--height",
                str(height),
                "--source-width",
                str(width),
                "--source-height",
                str(height),
                "-o",
                str(tmp_path / "b.png"),
            ]
        )
        == 0
    )
    a = np.asarray(Image.open(tmp_path / "a.png").convert("RGB"), np.float64) / 255
    b = np.asarray(Image.open(tmp_path / "b.png").convert("RGB"), np.float64) / 255
    assert a.shape == (height, width, 3) and np.array_equal(a, b)
    # torch-imfit's own picture of the file, to the PNG's rounding
    assert np.abs(a - torch_imfit_render(rows, width, height)).max() <= 1.5 / 255
    # --width alone: square (a .txt has no aspect), exact for rotated wavelets too
    rotated = seed_rows(rng, n, rng.uniform(-0.5, 0.5, n))
    txt.write_text("".join(",".join(f"{v:f}" for v in row) + "\n" for row in rotated))
    assert main(["render", str(txt), "--width", "32", "-o", str(tmp_path / "square.png")]) == 0
    square = np.asarray(Image.open(tmp_path / "square.png").convert("RGB"), np.float64) / 255
    assert square.shape == (32, 32, 3)
    assert np.abs(square - torch_imfit_render(np.round(rotated, 6), 32, 32)).max() <= 1.5 / 255
    capsys.readouterr()


def test_stylize_takes_iterations_and_steps():
    base = ["stylize", "content.png", "style.png", "-o", "out.png"]
    assert build_parser().parse_args([*base, "--iterations", "7"]).steps == 7
    assert build_parser().parse_args([*base, "--steps", "9"]).steps == 9


def test_stylize_iterations_runs_that_many_steps(tmp_path, capsys):
    out = tmp_path / "o.png"
    assert (
        main(
            [
                "stylize",
                str(DATA / "chelsea.png"),
                str(DATA / "brick.png"),
                "-o",
                str(out),
                "--levels",
                "1",
                "--base",
                "24",
                "--iterations",
                "2",
                "--optimizer",
                "adam",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert ", 2 steps in " in capsys.readouterr().out and Image.open(out).size == (36, 24)


def test_the_seed_preset_keeps_torch_imfits_schedule():
    """Our default gives the time to the full size (iter_multiple 0.3); --preset seed runs torch-imfit's own
    default (1.5), so `imfit fit --preset seed --iterations N` trains what torch-imfit's training.py would."""
    from imfit_engine.cli.fit import config_from
    from imfit_engine.core.config import DEFAULTS, SEED_ITER_MULTIPLE

    def config(*extra):
        return config_from(build_parser().parse_args(["fit", "photo.png", *extra]))

    assert config().iter_multiple == DEFAULTS.iter_multiple == 0.3
    assert config("--preset", "seed").iter_multiple == SEED_ITER_MULTIPLE == 1.5
    assert config("--preset", "seed", "--iter-multiple", "0.5").iter_multiple == 0.5
    assert config("--iter-multiple", "2").iter_multiple == 2.0


def test_expand_fits_its_wavelets_with_imfit_fits_defaults():
    """`imfit expand --wavelets` once kept 200 iterations from before the default schedule changed (with
    iter_multiple 0.3 that is ~380 iterations in all, not ~1600): its fit defaults are FitConfig's."""
    from imfit_engine.core.config import DEFAULTS

    a = build_parser().parse_args(["expand", "texture.png", "-o", "out.png", "--wavelets", "w.json"])
    assert (a.num_gabors, a.fit_size, a.fit_iterations) == (
        DEFAULTS.num_wavelets,
        DEFAULTS.size,
        DEFAULTS.iterations,
    )
