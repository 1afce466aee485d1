"""Fit files: the canonical JSON (format 1) and torch-imfit's ``.txt``.

Needs numpy and the standard library only (Blender's Python reads these files).

Canonical JSON, format version 1 (key order is free; metadata is written first, the wavelet
rows last, one row per line)::

    {"format": "gabor-imfit", "version": 1,
     "source": {"width": W, "height": H, "name": "..."},
     "columns": ["u", "v", ...the 12 model.COLUMNS...], "units": {...model.UNITS...},
     "settings": {...}, "metrics": {...},
     "wavelets": [[12 numbers], ...]}

Rows follow "columns", which a reader matches by name, so any column order loads.  float32
parameters are written with the shortest digits that read back to the same float32, so a
save/load round trip is exact.

torch-imfit ``.txt``: one line per wavelet, 12 comma-separated ``%f`` numbers, no header::

    u, v, theta, rel_sigma, gamma, rel_freq, psi_R, psi_G, psi_B, amp_R, amp_G, amp_B

The seed renders on a W x H raster whose column i sits at xs = -1 + 2i/(W-1) and row j (row 0
on top) at ys = -1 + 2j/(H-1), with no aspect correction: t = 2 pi theta, offsets rotated by t,
envelope exp(-xr^2/2 rel_sigma^2 - yr^2/2 gamma^2), carrier cos(2 pi/exp(rel_freq) * xr
+ 2 pi psi_c).  The file stores no raster size, so import and export take width and height.

Canonical pixel centres are x = (i + .5)/H, y = 1 - (j + .5)/H (height units), so a seed
offset (dxs, dys) is the canonical offset (a dxs, -b dys) with a = (W-1)/(2H), b = (H-1)/(2H).
On a square raster a == b: the map is a similarity with a y flip and the conversion is exact
(theta = -2 pi theta_s, sigma = a rel_sigma, gamma = a gamma_s, wavelength = a exp(rel_freq),
phase = 2 pi psi).  On a non-square raster the seed stretches its wavelets, which the canonical
model (round in image space) cannot always express: the carrier's wave vector is mapped
exactly (by the inverse transpose of diag(a, -b)) and gives theta and wavelength; the
envelope's covariance is mapped by diag(a, -b) and projected on the new wave axes for sigma
and gamma.  That is exact for axis-aligned wavelets and approximate for rotated ones; a
warning says so.  Export is the inverse map; negative amplitudes become |amp| with the phase
shifted by pi, phases wrap to psi in (-0.5, 0.5], and values outside the ranges the seed
clamps to are clamped, with one warning that counts them.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import numpy as np

from .. import limits
from ..core import model
from ..core.config import LIMITS
from ..core.model import AMP, COLUMNS, GAMMA, PHASE, SIGMA, THETA, WAVELENGTH, U, V, WaveletSet
from ..errors import ImfitError
from .atomic import write_atomic

log = logging.getLogger("imfit")

FORMAT_NAME = "gabor-imfit"
FORMAT_VERSION = 1
SUFFIXES = (".json", ".txt")

# ----------------------------------------------------------------------------------------
# Shared helpers


def _read_text(path: Path, what: str) -> str:
    limits.regular_file(path, what)
    try:
        if path.is_file():  # parsing takes a multiple of the text's size
            limits.check_memory(
                path.stat().st_size * limits.JSON_BYTES_PER_FILE_BYTE,
                f"reading {what} {path} ({limits.format_bytes(path.stat().st_size)})",
                "Use a smaller fit file",
            )
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ImfitError(f"cannot read {what} {path}: no such file. Check the path.") from None
    except UnicodeDecodeError as e:
        raise ImfitError(
            f"cannot read {what} {path}: not a text file ({e.reason} at byte {e.start}). "
            "Choose a .json or .txt fit file."
        ) from None
    except OSError as e:
        raise ImfitError(f"cannot read {what} {path}: {e.strerror or e}. Check the path and its permissions.") from None


def _positive_size(value, what: str, source_name: str, minimum: int = 1) -> int:
    """An image size as int; integral floats are accepted (some tools write 512.0)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok and math.isfinite(value) and float(value).is_integer() and minimum <= value <= limits.MAX_SOURCE_SIDE:
        return int(value)
    rule = f">= {minimum}" if not (ok and value > limits.MAX_SOURCE_SIDE) else f"<= {limits.MAX_SOURCE_SIDE}"
    raise ImfitError(
        f"{source_name}: {what} must be a whole number {rule}, found {value!r:.40}. "
        "Give the size of the image the fit was made for."
    )


def _check_values(params: np.ndarray, source_name: str, row_name=None) -> None:
    """An ImfitError naming the row and column of the first value the model cannot render, and for more
    wavelets than a fit may have.  ``row_name(i)`` says where row i is (default: "wavelet row i")."""
    if len(params) > LIMITS["num_wavelets"][1]:
        raise ImfitError(
            f"{source_name}: {len(params)} wavelets, more than the {LIMITS['num_wavelets'][1]} a fit may have. "
            "This is not a fit Gabor ImFit made: check the file"
        )
    found = model.invalid_value(params)
    if found is not None:
        i, j, why = found
        where = row_name(i) if row_name else f"wavelet row {i}"
        raise ImfitError(
            f"{source_name}: {where}, {COLUMNS[j]} is {float(params[i, j])!r:.40}, {why}. "
            "The fit is broken: fit the image again"
        )


def _check_params(ws: WaveletSet, target: str) -> np.ndarray:
    params = np.asarray(ws.params)
    if params.ndim != 2 or params.shape[1] != len(COLUMNS):
        raise ValueError(f"WaveletSet.params must be (N, {len(COLUMNS)}), got {params.shape}")
    bad = ~np.isfinite(params).all(axis=1)
    if bad.any():
        raise ImfitError(
            f"cannot save {target}: {int(bad.sum())} of {len(params)} wavelets have "
            f"non-finite parameters (first: row {int(np.flatnonzero(bad)[0])}); the fit diverged. "
            "Fit again, e.g. with a lower learning rate."
        )
    _check_values(params, f"cannot save {target}")
    return params


def _source(ws: WaveletSet) -> dict:
    """meta["source"] with the WaveletSet's own size (that is what the params are relative to)."""
    source = dict(ws.meta.get("source") or {})
    source.setdefault("name", "")
    source["width"], source["height"] = int(ws.width), int(ws.height)
    return source


# ----------------------------------------------------------------------------------------
# Canonical JSON


def _jsonable(value, where: str):
    """Settings/metrics as plain JSON: numpy to Python, paths to text, non-finite floats to null."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist(), where)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot write {where} = {value!r} ({type(value).__name__}) to JSON")


def _number_texts(values: np.ndarray) -> list[str]:
    """Shortest text per number that reads back to the same value (float32 stays float32)."""
    flat = np.ascontiguousarray(values).ravel()
    if flat.dtype != np.float32:
        return [repr(v) for v in flat.astype(np.float64).tolist()]
    texts = [str(v) for v in flat]  # numpy's shortest float32 digits
    # reading goes through a float64 first; keep the exact float64 digits if that ever rounds off
    back = np.array(texts, dtype=np.float64).astype(np.float32) if texts else flat
    for i in np.flatnonzero(back != flat):
        texts[i] = repr(float(flat[i]))
    return texts


def to_json_text(ws: WaveletSet) -> str:
    """The canonical JSON text of a fit (format version 1)."""
    params = _check_params(ws, "the fit as JSON")
    head = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "source": _jsonable(_source(ws), "source"),
        "columns": list(COLUMNS),
        "units": model.UNITS,
        "settings": _jsonable(ws.meta.get("settings") or {}, "settings"),
        "metrics": _jsonable(ws.meta.get("metrics") or {}, "metrics"),
    }
    texts = _number_texts(params)
    n = len(COLUMNS)
    rows = ",\n".join("  [" + ", ".join(texts[k : k + n]) + "]" for k in range(0, len(texts), n))
    head_text = json.dumps(head, indent=1, ensure_ascii=False, allow_nan=False)
    body = f'"wavelets": [\n{rows}\n ]' if rows else '"wavelets": []'
    return head_text[:-2] + ",\n " + body + "\n}\n"


def save_json(ws: WaveletSet, path) -> None:
    """Write the canonical JSON of ``ws`` to ``path`` atomically."""
    write_atomic(path, to_json_text(ws))


def _require(doc: dict, key: str, kind, source_name: str, where: str = ""):
    """doc[key], checked to be of ``kind`` (None: any type)."""
    if key not in doc:
        raise ImfitError(
            f'{source_name}: the key "{where}{key}" is missing. '
            "The file is damaged or not a complete Gabor ImFit fit: export it again."
        )
    value = doc[key]
    if kind is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        expected = {dict: "an object", list: "a list", int: "a whole number"}[kind]
        raise ImfitError(
            f'{source_name}: "{where}{key}" must be {expected}, found {value!r:.60}. '
            "The file is damaged: export the fit again."
        )
    return value


def _column_order(columns: list, source_name: str) -> list[int]:
    """For each canonical column, its index in the file's rows."""
    names = [c for c in columns if isinstance(c, str)]
    if len(names) != len(columns):
        raise ImfitError(f'{source_name}: "columns" must be a list of names, found {columns!r:.120}.')
    duplicates = sorted({c for c in names if names.count(c) > 1})
    missing = [c for c in COLUMNS if c not in names]
    unknown = [c for c in names if c not in COLUMNS]
    if duplicates or missing or unknown:
        problems = [
            f"{label} {', '.join(cols)}"
            for label, cols in (("missing", missing), ("unknown", unknown), ("repeated", duplicates))
            if cols
        ]
        raise ImfitError(
            f'{source_name}: "columns" must name each of {", ".join(COLUMNS)} once '
            f"({'; '.join(problems)}). Export the fit again."
        )
    return [names.index(c) for c in COLUMNS]


def _wavelet_rows(rows: list, ncols: int, source_name: str) -> np.ndarray:
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != ncols:
            found = f"{len(row)} values" if isinstance(row, list) else repr(row)[:60]
            raise ImfitError(
                f"{source_name}: wavelet row {i} must be a list of {ncols} numbers, found {found}. "
                "The file is damaged: export the fit again."
            )
        for j, value in enumerate(row):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ImfitError(
                    f"{source_name}: wavelet row {i}, value {j} is {value!r:.40}, not a number. "
                    "The file is damaged: export the fit again."
                )
    values = np.array(rows, dtype=np.float64).reshape(len(rows), ncols)
    bad = ~(np.abs(values) <= np.finfo(np.float32).max)  # NaN, inf and float32 overflow
    if bad.any():
        i, j = (int(k) for k in np.argwhere(bad)[0])
        raise ImfitError(
            f"{source_name}: wavelet row {i}, value {j} is {values[i, j]!r}, not a finite "
            "float32 number. The fit is broken: fit the image again."
        )
    return values


def parse_json_text(text: str, source_name: str) -> WaveletSet:
    """Read canonical JSON from a string; ``source_name`` (a file or text name) is used in errors."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ImfitError(
            f"{source_name}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}). "
            "Fix the file or export the fit again."
        ) from None
    except RecursionError:
        raise ImfitError(f"{source_name}: JSON nested too deeply. This is not a Gabor ImFit fit.") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ImfitError(
            f'{source_name}: not a Gabor ImFit fit ("format" is {found!r:.60}, '
            f"expected {FORMAT_NAME!r}). Choose a fit saved by Gabor ImFit, "
            "or a torch-imfit .txt file."
        )
    version = _require(doc, "version", int, source_name)
    if version > FORMAT_VERSION:
        raise ImfitError(
            f"{source_name}: written by a newer Gabor ImFit (format {version}); this version "
            f"reads format {FORMAT_VERSION}: upgrade Gabor ImFit."
        )
    if version < 1:
        raise ImfitError(f"{source_name}: unknown format version {version}. Export the fit again.")
    source = dict(_require(doc, "source", dict, source_name))
    width = _positive_size(_require(source, "width", None, source_name, "source."), "source.width", source_name)
    height = _positive_size(_require(source, "height", None, source_name, "source."), "source.height", source_name)
    source["width"], source["height"] = width, height
    order = _column_order(_require(doc, "columns", list, source_name), source_name)
    values = _wavelet_rows(_require(doc, "wavelets", list, source_name), len(doc["columns"]), source_name)
    meta = {"source": source}
    for key in ("settings", "metrics"):
        meta[key] = dict(_require(doc, key, dict, source_name)) if key in doc else {}
    params = values[:, order].astype(np.float32)
    _check_values(params, source_name)
    return WaveletSet(params, width, height, meta)


def load_json(path) -> WaveletSet:
    """Read a canonical JSON fit file."""
    path = Path(path)
    return parse_json_text(_read_text(path, "fit file"), str(path))


# ----------------------------------------------------------------------------------------
# torch-imfit .txt

TXT_COLUMNS = (
    "u",
    "v",
    "theta",
    "rel_sigma",
    "gamma",
    "rel_freq",
    "psi_R",
    "psi_G",
    "psi_B",
    "amp_R",
    "amp_G",
    "amp_B",
)
# ranges the seed clamps its parameters to every step (theta and psi stay in range here)
TXT_RANGES = {
    "u": (-1.0, 1.0),
    "v": (-1.0, 1.0),
    "rel_sigma": (1e-3, 1.0),
    "gamma": (1e-4, 1.0),
    "rel_freq": (-5.0, 5.0),
    "amp_R": (0.0, 1.0),
    "amp_G": (0.0, 1.0),
    "amp_B": (0.0, 1.0),
}


def _raster_scales(width, height, source_name: str) -> tuple[float, float]:
    """(a, b): canonical height units per unit of the seed's xs and ys."""
    if width is None or height is None:
        raise ImfitError(
            f"{source_name}: a torch-imfit .txt stores no image size; give the width and height "
            "of the image it was fitted to."
        )
    w = _positive_size(width, "width", source_name, minimum=2)
    h = _positive_size(height, "height", source_name, minimum=2)
    return (w - 1) / (2 * h), (h - 1) / (2 * h)


def _map_wavelets(direction, wavelength, sigma, gamma, scale):
    """Carry wavelets through the linear map diag(scale) of offsets (float64 arrays).

    The wave vector maps by the inverse transpose (exact); the envelope covariance maps by the
    map itself and is projected on the new wave direction and its normal.
    """
    sx, sy = scale
    c, s = np.cos(direction), np.sin(direction)
    kx, ky = c / wavelength / sx, s / wavelength / sy  # wave vector / 2 pi
    new_direction = np.arctan2(ky, kx)
    new_wavelength = 1.0 / np.hypot(kx, ky)
    # covariance R diag(sigma^2, gamma^2) R^T, then scaled: entries of diag(scale) C diag(scale)
    s2, g2 = sigma**2, gamma**2
    cxx = (c * c * s2 + s * s * g2) * sx * sx
    cyy = (s * s * s2 + c * c * g2) * sy * sy
    cxy = c * s * (s2 - g2) * sx * sy
    nc, ns = np.cos(new_direction), np.sin(new_direction)
    # variances are >= 0; rounding can leave a tiny negative one for a thin envelope
    new_sigma = np.sqrt(np.maximum(nc * nc * cxx + 2 * nc * ns * cxy + ns * ns * cyy, 0.0))
    new_gamma = np.sqrt(np.maximum(ns * ns * cxx - 2 * nc * ns * cxy + nc * nc * cyy, 0.0))
    return new_direction, new_wavelength, new_sigma, new_gamma


def _warn_if_stretched(a: float, b: float, direction: np.ndarray, width: int, height: int, action: str):
    """Warn once when a non-square raster makes the conversion approximate (rotated wavelets)."""
    quarter = direction / (math.pi / 2)
    rotated = int((np.abs(quarter - np.round(quarter)) > 1e-6).sum())
    if a != b and rotated:
        log.warning(
            "%s a torch-imfit .txt for a non-square %dx%d raster: the seed stretches its wavelets "
            "there, so the conversion approximates the envelopes of its %d rotated wavelets "
            "(the %d axis-aligned ones are exact).",
            action,
            width,
            height,
            rotated,
            len(direction) - rotated,
        )


def _seed_to_canonical(seed: np.ndarray, width: int, height: int, a: float, b: float) -> np.ndarray:
    seed = seed.astype(np.float64)
    aspect = width / height
    out = np.empty_like(seed)
    direction, wavelength, sigma, gamma = _map_wavelets(
        2 * math.pi * seed[:, 2], np.exp(seed[:, 5]), np.abs(seed[:, 3]), np.abs(seed[:, 4]), (a, -b)
    )
    out[:, U] = (a * seed[:, 0] + aspect / 2) / aspect
    out[:, V] = 0.5 - b * seed[:, 1]
    out[:, THETA], out[:, WAVELENGTH], out[:, SIGMA], out[:, GAMMA] = direction, wavelength, sigma, gamma
    out[:, PHASE] = 2 * math.pi * seed[:, 6:9]
    out[:, AMP] = seed[:, 9:12]
    return out


def _canonical_to_seed(params: np.ndarray, width: int, height: int, a: float, b: float) -> np.ndarray:
    p = params.astype(np.float64)
    aspect = width / height
    seed = np.empty_like(p)
    # a negative wavelength is the same carrier pointing the other way
    theta = p[:, THETA] + np.where(p[:, WAVELENGTH] < 0, math.pi, 0.0)
    direction, wavelength, sigma, gamma = _map_wavelets(
        theta, np.abs(p[:, WAVELENGTH]), np.abs(p[:, SIGMA]), np.abs(p[:, GAMMA]), (1 / a, -1 / b)
    )
    seed[:, 0] = (p[:, U] * aspect - aspect / 2) / a
    seed[:, 1] = (0.5 - p[:, V]) / b
    seed[:, 2] = direction / (2 * math.pi)
    seed[:, 3], seed[:, 4], seed[:, 5] = sigma, gamma, np.log(wavelength)
    amp, phase = p[:, AMP], p[:, PHASE] + np.where(p[:, AMP] < 0, math.pi, 0.0)
    psi = phase / (2 * math.pi)
    seed[:, 6:9] = -np.remainder(-psi + 0.5, 1.0) + 0.5  # wrapped to (-0.5, 0.5]
    seed[:, 9:12] = np.abs(amp)
    return seed


def _clamp_to_seed_ranges(seed: np.ndarray) -> None:
    """Clamp in place to the seed's ranges; one warning counts what changed."""
    counts = {}
    for name, (lo, hi) in TXT_RANGES.items():
        col = seed[:, TXT_COLUMNS.index(name)]
        # float32 rounding (an amplitude of 1.0000001) is no change worth a warning
        tol = 1e-6 * max(1.0, abs(lo), abs(hi))
        outside = (col < lo - tol) | (col > hi + tol)
        if outside.any():
            counts[name] = int(outside.sum())
        np.clip(col, lo, hi, out=col)
    if counts:
        detail = ", ".join(f"{name} {n}" for name, n in counts.items())
        log.warning(
            "torch-imfit .txt export: %d values were outside the ranges torch-imfit clamps to and were "
            "clamped (%s); the seed will render those wavelets differently.",
            sum(counts.values()),
            detail,
        )


def parse_txt_text(text: str, source_name: str, width, height) -> WaveletSet:
    """Read torch-imfit ``.txt`` text fitted on a ``width`` x ``height`` raster."""
    a, b = _raster_scales(width, height, source_name)
    width, height = int(width), int(height)
    rows, line_numbers = [], []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        line_numbers.append(line_number)
        fields = line.split(",")
        if len(fields) != len(TXT_COLUMNS):
            raise ImfitError(
                f"{source_name} line {line_number}: expected {len(TXT_COLUMNS)} comma-separated "
                f"numbers ({', '.join(TXT_COLUMNS)}), found {len(fields)} fields: {line.strip()!r:.80}. "
                "Is this a torch-imfit weights file?"
            )
        row = []
        for k, field in enumerate(fields):
            try:
                value = float(field)
            except ValueError:
                raise ImfitError(
                    f"{source_name} line {line_number}: {TXT_COLUMNS[k]} (field {k + 1}) is "
                    f"{field.strip()!r:.40}, not a number. Fix or re-export the file."
                ) from None
            if not math.isfinite(value):
                raise ImfitError(
                    f"{source_name} line {line_number}: {TXT_COLUMNS[k]} (field {k + 1}) is "
                    f"{field.strip()!r}, not a finite number. The fit is broken: fit again."
                )
            row.append(value)
        rows.append(row)
    if not rows:
        raise ImfitError(
            f"{source_name}: no wavelets (the file is empty). Choose the .txt weights file "
            "torch-imfit saved next to its preview image."
        )
    seed = np.array(rows, dtype=np.float64)
    _warn_if_stretched(a, b, 2 * math.pi * seed[:, 2], width, height, "importing")
    with np.errstate(all="ignore"):  # overflow becomes inf, which the check names
        params = _seed_to_canonical(seed, width, height, a, b).astype(np.float32)
    _check_values(params, source_name, lambda i: f"line {line_numbers[i]} (as the canonical model)")
    meta = {
        "source": {"width": width, "height": height, "name": Path(source_name).name},
        "settings": {"imported_from": "torch-imfit .txt"},
        "metrics": {},
    }
    return WaveletSet(params, width, height, meta)


def load_txt(path, width, height) -> WaveletSet:
    """Read a torch-imfit ``.txt`` fitted on a ``width`` x ``height`` raster."""
    path = Path(path)
    return parse_txt_text(_read_text(path, "torch-imfit .txt file"), str(path), width, height)


def to_txt_text(ws: WaveletSet, width=None, height=None, decimals: int = 6) -> str:
    """torch-imfit ``.txt`` text for a ``width`` x ``height`` raster (default: the fit's source size).

    ``decimals=6`` writes ``%f`` like the seed; more keeps more precision.
    """
    width = ws.width if width is None else width
    height = ws.height if height is None else height
    a, b = _raster_scales(width, height, "torch-imfit .txt export")
    params = _check_params(ws, "the fit as torch-imfit .txt")
    if not len(params):  # torch-imfit and our reader take an empty file for a broken one
        raise ImfitError("cannot save the fit as torch-imfit .txt: it has no wavelets. Fit the image first")
    _warn_if_stretched(a, b, params[:, THETA].astype(np.float64), int(width), int(height), "exporting")
    seed = _canonical_to_seed(params, int(width), int(height), a, b)
    _clamp_to_seed_ranges(seed)
    bad = ~np.isfinite(seed)
    if bad.any():  # never written: the reader would refuse it
        i, j = (int(k) for k in np.argwhere(bad)[0])
        raise ImfitError(
            f"cannot save the fit as torch-imfit .txt: wavelet row {i} has no torch-imfit equivalent "
            f"({TXT_COLUMNS[j]} would be {seed[i, j]}). Keep it as .json"
        )
    fmt = ",".join([f"%.{int(decimals)}f"] * len(TXT_COLUMNS))
    return "".join(fmt % tuple(row) + "\n" for row in seed.tolist())


def save_txt(ws: WaveletSet, path, width=None, height=None, decimals: int = 6) -> None:
    """Write ``ws`` as a torch-imfit ``.txt`` atomically (see ``to_txt_text``)."""
    write_atomic(path, to_txt_text(ws, width, height, decimals))


# ----------------------------------------------------------------------------------------
# Dispatch on the file suffix


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ImfitError(
            f"{path}: unknown fit file type {path.suffix or '(no suffix)'!r}. "
            f"Use {' or '.join(SUFFIXES)} (Gabor ImFit JSON or torch-imfit text)."
        )
    return suffix


def load_params(path, width=None, height=None) -> WaveletSet:
    """Read a fit by suffix: ``.json`` (size inside) or ``.txt`` (needs ``width`` and ``height``)."""
    path = Path(path)
    if _suffix(path) == ".json":
        return load_json(path)
    return load_txt(path, width, height)


def save_params(ws: WaveletSet, path, width=None, height=None) -> None:
    """Write a fit by suffix; ``width``/``height`` choose the ``.txt`` raster (``.json`` keeps ``ws``'s size)."""
    path = Path(path)
    if _suffix(path) == ".json":
        save_json(ws, path)
    else:
        save_txt(ws, path, width, height)
