"""What one command may take: a memory budget checked before the work starts, and inputs that are files.

Standard library only (the CLI checks its arguments before torch is imported).  The estimates are
measured upper bounds of the peak, not exact figures: a job that passes them fits in memory, one that
fails them says which limit it meets and how to change it (``--max-memory`` or ``IMFIT_MAX_MEMORY``).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import stat
from pathlib import Path

from .errors import ImfitError

ENV = "IMFIT_MAX_MEMORY"
# what a job may use of the memory the system has available when it starts (the rest: the system, Blender)
AVAILABLE_SHARE = 0.8
# a fit's source raster, longest side: any larger is beyond what an image decoder or a GPU holds
MAX_SOURCE_SIDE = 1 << 20
# measured peaks (CPU, tests/engine/test_hostile.py checks a real run stays under its estimate)
RENDER_BYTES_PER_PIXEL = 64  # the tiled sum, the image, its float64 and 8-bit copies for the PNG
RENDER_BYTES_PER_PAIR = 200  # one (wavelet, tile) pair while binning
FIT_BYTES_PER_WAVELET = 2048  # parameters, Adam's moments, seeding, pairs of small wavelets
FIT_BYTES_PER_TRAIN_PIXEL = 350  # pyramid targets, weights, renders and gradients of every level
FIT_BYTES_PER_SOURCE_PIXEL = 36  # the decoded image as float32 and on the device
JSON_BYTES_PER_FILE_BYTE = 12  # json.loads' Python objects (a float is 24 bytes for ~8 characters)

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_max_memory: int | None = None


def parse_size(text: str, what: str = "--max-memory") -> int:
    """Bytes from ``4G``, ``512M``, ``1.5GB``, ``2000000`` (binary units)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([kmgt]?)i?b?\s*", str(text), re.IGNORECASE)
    value = float(m.group(1)) * _UNITS[m.group(2).lower()] if m else math.nan
    if not (math.isfinite(value) and value >= 1 << 20):
        raise ImfitError(f"{what} must be a size of at least 1M, such as 512M or 4G, got {text!r:.40}")
    return int(value)


def format_bytes(n: float) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{max(0, int(n)) >> 10} KB"


@contextlib.contextmanager
def max_memory(limit: int | None):
    """Within the block, jobs may use ``limit`` bytes (None: the default budget)."""
    global _max_memory
    saved, _max_memory = _max_memory, limit
    try:
        yield
    finally:
        _max_memory = saved


def _meminfo_available() -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return None


def _cgroup_room() -> int | None:
    with contextlib.suppress(OSError, ValueError):
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            return int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text())
    return None


def _address_space_room() -> int | None:
    """What RLIMIT_AS (ulimit -v) leaves: the limit less the address space already mapped."""
    try:
        import resource  # POSIX only: Windows has no address-space limit to respect
    except ImportError:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return soft - int(line.split()[1]) * 1024
    return soft


def budget() -> tuple[int, str]:
    """(bytes a job may use, where that figure comes from)."""
    if _max_memory is not None:
        return _max_memory, "--max-memory"
    if os.environ.get(ENV):
        return parse_size(os.environ[ENV], ENV), ENV
    rooms = [(r, why) for r, why in ((_cgroup_room(), "the container's limit"), (_address_space_room(), "ulimit -v"))]
    available = _meminfo_available()
    if available is not None:
        rooms.append((int(available * AVAILABLE_SHARE), f"{AVAILABLE_SHARE:.0%} of the available memory"))
    rooms = [(max(0, r), why) for r, why in rooms if r is not None]
    return min(rooms) if rooms else (1 << 62, "no known limit")


def check_memory(need: float, what: str, advice: str) -> None:
    """An ImfitError when ``what`` needs more than the budget; ``advice`` says what makes it smaller."""
    limit, source = budget()
    if need > limit:
        raise ImfitError(
            f"{what} needs about {format_bytes(need)} of memory, more than the {format_bytes(limit)} allowed "
            f"({source}). {advice}, or raise the limit with --max-memory (or {ENV})"
        )


def render_bytes(pixels: float, pairs: float) -> float:
    return pixels * RENDER_BYTES_PER_PIXEL + pairs * RENDER_BYTES_PER_PAIR


def fit_bytes(wavelets: int, train_pixels: float, source_pixels: float) -> float:
    return (
        wavelets * FIT_BYTES_PER_WAVELET
        + train_pixels * FIT_BYTES_PER_TRAIN_PIXEL
        + source_pixels * FIT_BYTES_PER_SOURCE_PIXEL
    )


def regular_file(path, what: str) -> Path:
    """``path``, refused unless it is missing, a folder or a regular file (a FIFO or a device would block
    or never end); callers say themselves what is wrong with a missing file or a folder."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):
        return path
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        device = stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device" if device else "a socket"
        raise ImfitError(f"cannot read {what} {path}: it is {kind}, not a regular file. Give a file saved on disk")
    return path
