"""Fit settings: the one source of their defaults and limits, read by the engine, the CLI and Blender.

Standard library only: Blender's Python builds its panel properties from these values without torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass
class FitConfig:
    """Settings of one fit; ``FitConfig()`` holds the defaults the CLI and the Blender panel show."""

    num_wavelets: int = 256
    size: int = 256  # longest side of the training raster, pixels
    iterations: int = 200  # iterations at full size; coarser levels get more (iter_multiple)
    iter_multiple: float = 1.5
    rescales: int = 2  # coarse levels, each half the size of the next
    lr: float = 0.01  # global learning rate (per-group rates are multiples of it)
    gamma: float = 0.997  # learning-rate factor applied when the loss plateaus
    l1: float = 0.0
    gradient: float = 0.0
    sobel: float = 0.0
    mutation_scale: float = 0.0
    device: str = "auto"
    seed: int = 0
    reseed_every: int = 50  # iterations between dead-wavelet re-seeding passes (0: never)
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


# (lowest, highest) value of the integer settings a user types; None: unbounded
LIMITS = {
    "num_wavelets": (1, None),
    "size": (8, 8192),  # 8 px: a 2-level pyramid still has 2 px at its coarsest
    "iterations": (0, None),
    "rescales": (0, 6),
}
DEFAULTS = FitConfig()
