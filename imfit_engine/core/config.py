"""Fit settings: the one source of their defaults and limits, read by the engine, the CLI and Blender.

Standard library only: Blender's Python builds its panel properties from these values without torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from ..errors import ImfitError


@dataclass
class FitConfig:
    """Settings of one fit; ``FitConfig()`` holds the defaults the CLI and the Blender panel show."""

    num_wavelets: int = 256
    size: int = 256  # longest side of the training raster, pixels
    # iterations at full size; coarse level a gets iterations * (rescales - a) * iter_multiple.  Most of the time
    # goes to the full size: on held-out photos (256 wavelets, 256 px) 1000 / 0.3 gave +0.4 dB over 200 / 1.5,
    # and +4.2 to +5.6 dB over torch-imfit's algorithm in a fraction of its time (README, "Speed and quality")
    iterations: int = 1000
    iter_multiple: float = 0.3
    rescales: int = 2  # coarse levels, each half the size of the next
    lr: float = 0.01  # global learning rate (per-group rates are multiples of it)
    gamma: float = 0.997  # learning-rate factor applied when the loss plateaus
    l1: float = 0.0
    gradient: float = 0.0
    sobel: float = 0.0
    mutation_scale: float = 0.0
    device: str = "auto"
    seed: int = 0
    reseed_every: int = 50  # iterations between passes moving dead and weakest wavelets to the residual (0: never)
    carrier_solve_steps: int = 12  # least-squares steps for amplitudes/phases after (re)seeding
    preset: str = "default"  # "seed": torch-imfit's algorithm (api.PRESETS), for comparisons
    compile: str = "auto"  # torch.compile'd kernels: "auto" = on for CUDA (the CPU runs numba's), "on", "off"
    time_budget: float = 0.0  # seconds; > 0: the full-size level runs as long as the budget allows, then anneals

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FitConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# (lowest, highest) value of the integer settings a user types, each bound for a reason:
# num_wavelets: at the largest size (8192) a million wavelets leave each fewer than 64 pixels, and the fit's
#   parameters and optimiser state alone need ~2 GB; size: 8 px keeps 2 px at a 2-level pyramid's coarsest;
# iterations: a fit stops improving long before a million steps; rescales: 6 halvings of 8192 px is 128 px
LIMITS = {
    "num_wavelets": (1, 1 << 20),
    "size": (8, 8192),
    "iterations": (0, 1_000_000),
    "rescales": (0, 6),
}
# (lowest, highest, lowest allowed itself) of the float settings; every value must be finite
FLOAT_LIMITS = {
    "iter_multiple": (0.0, 10.0, True),
    "lr": (0.0, 10.0, False),  # Adam steps in log lengths: a rate past 10 only diverges
    "gamma": (0.0, 1.0, False),  # a factor on plateaus: a decay, never a growth
    "l1": (0.0, 1e6, True),
    "gradient": (0.0, 1e6, True),
    "sobel": (0.0, 1e6, True),
    "mutation_scale": (0.0, 10.0, True),  # noise in units of a step: past 10 it drowns the fit
    "time_budget": (0.0, 7 * 86400.0, True),  # a week
}
# the iterations of all levels together (rescales and iter_multiple multiply them): about a day on a GPU
MAX_TOTAL_ITERATIONS = 10_000_000
CHOICES = {
    "device": ("auto", "cpu", "cuda", "mps"),
    "preset": ("default", "seed"),
    "compile": ("auto", "on", "off"),
}
DEFAULTS = FitConfig()
# torch-imfit's own --iter-multiple default: what --preset seed runs unless told otherwise (its schedule)
SEED_ITER_MULTIPLE = 1.5


def check_config(config: FitConfig, names: dict | None = None) -> None:
    """An ImfitError for the first setting of the wrong type or out of range.

    ``names`` maps a field to what the user calls it (a CLI flag); job files use the field names.
    """

    def bad(field: str, rule: str):
        value = getattr(config, field)
        return ImfitError(f"{(names or {}).get(field, field)} must be {rule}, got {value!r:.40}")

    for field, (low, high) in LIMITS.items():
        value = getattr(config, field)
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad(field, "a whole number")
        if value < low or (high is not None and value > high):
            raise bad(field, f"between {low} and {high}")
    for field, (low, high, closed) in FLOAT_LIMITS.items():
        value = getattr(config, field)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise bad(field, "a finite number")
        if value < low or (value == low and not closed) or value > high:
            raise bad(field, f"{'at least' if closed else 'above'} {low:g} and at most {high:g}")
    for field in ("seed", "reseed_every", "carrier_solve_steps"):
        value = getattr(config, field)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value >= 1 << 63:
            raise bad(field, "a whole number >= 0")
    for field, choices in CHOICES.items():
        if getattr(config, field) not in choices:
            raise bad(field, "one of " + ", ".join(choices))
    r = config.rescales
    total = config.iterations * (1 + config.iter_multiple * r * (r + 1) / 2)
    if total > MAX_TOTAL_ITERATIONS:
        raise ImfitError(
            f"the levels add up to {total:.0f} iterations, more than {MAX_TOTAL_ITERATIONS} (days of fitting): "
            f"lower {(names or {}).get('iterations', 'iterations')}, {(names or {}).get('rescales', 'rescales')} "
            f"or {(names or {}).get('iter_multiple', 'iter_multiple')}"
        )
