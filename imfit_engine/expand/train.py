"""Training a texture's generator: the trainer, its losses, checkpoints that resume exactly, ``train``."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.device import check_device
from ..core.loop import Loop
from ..errors import ImfitError
from ..io.atomic import atomic_path
from ..io.weights import load_weights_only
from .apply import expand, to_tensor
from .config import MIN_K, MODEL_FIELDS, MULTIPLE, ExpandConfig
from .networks import ExpansionGenerator, build_networks

log = logging.getLogger("imfit")

CHECKPOINT_FORMAT = "imfit-expand-1"


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
        raise ImfitError(
            f"the texture is {width}x{height} pixels: expansion training needs at least "
            f"{2 * MIN_K}x{2 * MIN_K} (2k x 2k target crops with k >= {MIN_K}). Use a larger image"
        )
    return k


def style_loss(vgg, x: torch.Tensor, target_grams: dict, layers) -> torch.Tensor:
    """Sum over layers of |gram(x) - gram(T)|^2 / |gram(T)|^2 (x, T: N x 3 x H x W in [-1, 1])."""
    from ..style.vgg import gram

    feats = vgg.features((x + 1) / 2, layers)
    total = x.new_zeros(())
    for name in layers:
        g, t = gram(feats[name]), target_grams[name]
        total = total + ((g - t) ** 2).sum() / (t**2).sum().clamp_min(1e-12)
    return total


def target_grams(vgg, t: torch.Tensor, layers) -> dict:
    from ..style.vgg import gram

    with torch.no_grad():
        feats = vgg.features((t + 1) / 2, layers)
        return {name: gram(feats[name]) for name in layers}


def _bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


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


class ExpansionTrainer:
    """One texture's generator and discriminator, their optimisers and the crop sampler."""

    def __init__(self, rgb: np.ndarray, config: ExpandConfig, *, vgg=None):
        self.config = config.check()
        self.device = check_device(config.device)
        self.rgb = np.ascontiguousarray(np.asarray(rgb, dtype=np.float32))
        if self.rgb.ndim != 3 or self.rgb.shape[2] != 3:
            raise ImfitError(f"expansion needs an RGB image, got an array of shape {self.rgb.shape}")
        self.height, self.width = self.rgb.shape[:2]
        self.k = effective_k(config, self.width, self.height)
        if self.k < config.k:
            log.warning(
                "texture %dx%d is smaller than 2k = %d: training on %d px crops (k = %d)",
                self.width,
                self.height,
                2 * config.k,
                2 * self.k,
                self.k,
            )
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
            from ..style.vgg import load_vgg19

            self._vgg = load_vgg19(self.config.vgg_weights, device=self.device)
        return self._vgg

    # -- data

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(S, T): a random 2k x 2k crop T of the image and a k x k crop S of it."""
        k = self.k
        r = torch.randint(0, 1 << 30, (4,), generator=self.sampler).tolist()
        y = r[0] % (self.height - 2 * k + 1)
        x = r[1] % (self.width - 2 * k + 1)
        t = self.image[:, :, y : y + 2 * k, x : x + 2 * k]
        if self.config.source_offset == "center":
            sy = sx = k // 2
        else:
            sy, sx = r[2] % (k + 1), r[3] % (k + 1)
        return t[:, :, sy : sy + k, sx : sx + k], t

    # -- losses and one step

    def losses(self, s: torch.Tensor, t: torch.Tensor, g: nn.Module | None = None, d: nn.Module | None = None) -> dict:
        """Every loss (unweighted) for one (S, T) pair, without stepping; ``g`` / ``d`` replace the
        trainer's networks (e.g. copies from before a step)."""
        g, d = g or self.g, d or self.d
        layers = self.config.style_layers
        with torch.no_grad():
            fake = g(s)
            return {
                "adv": float(_bce(d(fake), True)),
                "style": float(style_loss(self.vgg, fake, target_grams(self.vgg, t, layers), layers)),
                "l1": float((fake - t).abs().mean()),
                "d": float(0.5 * (_bce(d(fake), False) + _bce(d(t), True))),
            }

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
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "iteration": self.iteration,
            "k": self.k,
            "image_sha256": self.image_sha256,
            "image_size": [self.width, self.height],
            "generator": self.g.state_dict(),
            "discriminator": self.d.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "sampler": self.sampler.get_state(),
        }

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
            raise ImfitError(
                f"{source}: not a usable expansion checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
            ) from None
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
    diff = [name for name in MODEL_FIELDS if getattr(saved, name) != getattr(config, name)]
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

    history = []
    loop = Loop(should_stop, on_progress, keep="the checkpoint can resume", every=progress_seconds, start=start)
    while trainer.iteration < total:
        if loop.stop_requested(f"{trainer.iteration} of {total}"):
            break
        losses = trainer.step()
        if not all(loop.finite(v, trainer.iteration) for v in losses.values()):
            raise ImfitError(
                f"expansion training diverged at iteration {trainer.iteration} (a loss became "
                "non-finite); try another seed or a lower learning rate"
            )
        it = trainer.iteration
        if it % 10 == 0 or it == total:
            history.append((it, losses))
        if path is not None and config.checkpoint_every and it % config.checkpoint_every == 0 and it < total:
            trainer.save(path)
        if (now := loop.report_due(force=it == total)) is not None:
            on_progress(ExpandProgress(it, total, losses, now, preview))
    if path is not None:
        trainer.save(path)
    return TrainResult(
        trainer.g.eval(), trainer.iteration, time.perf_counter() - start, loop.stopped, False, history, loop.message
    )
