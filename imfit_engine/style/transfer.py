"""Neural style transfer (Gatys et al.) with a pyramid loss and a structured-noise start.

The method follows the ArtStyleTransfer seed (``shared/seeds/art-style-transfer.md``):

* **Losses** on VGG19 features (``vgg.py``): content = ``conv4_2`` features, style = Gram matrices of
  ``relu1_1 ... relu5_1``, plus total variation.  Each term is relative (divided by the energy of its
  target), so the weights mean the same for any image, size or network.
* **Pyramid loss**: ``levels`` = L pyramid levels.  The output's shortest side is ``base * 2^(L-1)``
  (aspect kept), and the levels below it are binary reductions down to ``base`` (default 256): a 3:2
  content with L=2 gives 384x256 and 768x512.  (The seed's README writes the top as 256 * 2^L with L
  counting the levels *above* 256; its examples say "2 levels of pyramid (512 pixels)", which is this
  convention.)  Content and style are resized once per level (the style by its shortest side); at every
  step the optimised image is resized to every level and the losses of all levels are summed.
* **Structured noise start**: for each noise level (``spots`` per shortest side: 9, 18, 36, and 0 for
  pixel-wide) a grid of colours taken from randomly permuted style pixels is upsampled bicubically to
  the image; its amplitude runs from ``centre`` at the image centre to ``edge`` on the border through a
  Gaussian envelope, and falls where the content's local gradient is strong (edges stay clean).  Each
  level is mixed into the content in turn: ``x = x + weight * (noise - x)``.
* LBFGS (default) or Adam; ``on_progress`` gets ``fit.Progress`` objects (psnr = against the content),
  ``should_stop`` cancels (the current image is returned).

``StyleLoss`` is shared with the style-guided wavelet fit (``style_fit.py``), which renders its wavelets
natively at every level instead of resizing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..core.device import pick_device
from ..core.fit import Progress
from ..core.loop import Loop
from ..core.metrics import psnr_of
from ..errors import ImfitError
from . import vgg as vggmod
from .config import StyleConfig

CONTENT_LAYER = "conv4_2"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
MAX_PIXELS = 4096 * 4096  # top pyramid level: beyond this VGG activations need tens of GB


@dataclass
class StyleResult:
    image: np.ndarray  # (H, W, 3) in [0, 1], the top pyramid level's size
    seconds: float
    steps: int
    stopped: bool
    message: str
    history: list  # (step, loss, content, style, tv)
    start: np.ndarray  # the noisy starting image
    psnr: float  # of the result against the content (how far the style took it)


# ----------------------------------------------------------------------------------------
# pyramid


def pyramid_sizes(width: int, height: int, levels: int, base: int = 256) -> list[tuple[int, int]]:
    """(w, h) per level, coarse to fine: shortest side base * 2^k for k < levels, aspect kept."""
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    sizes = []
    for k in range(int(levels)):
        short = base * 2**k
        if width >= height:
            sizes.append((max(1, round(short * width / height)), short))
        else:
            sizes.append((short, max(1, round(short * height / width))))
    return sizes


def check_sizes(sizes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The sizes, or an ImfitError when the top level is too large to optimise."""
    w, h = sizes[-1]
    if w * h > MAX_PIXELS:
        raise ImfitError(
            f"the style pyramid's top level would be {w}x{h} pixels (more than {MAX_PIXELS:,}): "
            "use fewer levels or a smaller base size, or crop the image's aspect ratio"
        )
    return sizes


def resize(x: torch.Tensor, w: int, h: int) -> torch.Tensor:
    """N x C x H x W to N x C x h x w, bicubic, antialiased when shrinking; differentiable."""
    if x.shape[-2:] == (h, w):
        return x
    return F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False, antialias=True)


def to_nchw(rgb: np.ndarray | torch.Tensor, device=None) -> torch.Tensor:
    t = torch.as_tensor(np.ascontiguousarray(rgb), dtype=torch.float32)
    if t.dim() != 3 or t.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got {tuple(t.shape)}")
    return t.permute(2, 0, 1)[None].to(device)


def to_hwc(x: torch.Tensor) -> np.ndarray:
    return x.detach()[0].permute(1, 2, 0).clamp(0, 1).cpu().numpy()


# ----------------------------------------------------------------------------------------
# losses


def gram_loss(features: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """Relative Gram loss: mean squared Gram difference over the target Gram's mean square (0 if equal)."""
    g = vggmod.gram(features)
    return ((g - target_gram) ** 2).mean() / (target_gram**2).mean().clamp_min(1e-12)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((features - target) ** 2).mean() / (target**2).mean().clamp_min(1e-12)


def tv_loss(x: torch.Tensor) -> torch.Tensor:
    return (x[..., :, 1:] - x[..., :, :-1]).abs().mean() + (x[..., 1:, :] - x[..., :-1, :]).abs().mean()


class StyleLoss:
    """Content and style targets at every pyramid level; called with one image per level."""

    def __init__(
        self,
        net: vggmod.VGG19,
        content: torch.Tensor,
        style: torch.Tensor,
        sizes: Sequence[tuple[int, int]],
        content_weight: float = 1.0,
        style_weight: float = 1.0,
        content_layer: str = CONTENT_LAYER,
        style_layers: Sequence[str] = STYLE_LAYERS,
    ):
        self.net, self.sizes = net, list(sizes)
        self.content_weight, self.style_weight = content_weight, style_weight
        self.content_layer, self.style_layers = content_layer, tuple(style_layers)
        self.content_targets, self.style_grams = [], []
        sh, sw = style.shape[-2:]
        with torch.no_grad():
            for w, h in self.sizes:
                c = net.features(resize(content, w, h), (content_layer,))[content_layer]
                self.content_targets.append(c)
                # the style keeps its aspect; its shortest side matches the level's, but a very elongated
                # style is held to 4x the level's pixels
                scale = min(min(w, h) / min(sw, sh), math.sqrt(4.0 * w * h / (sw * sh)))
                s = resize(style, max(1, round(sw * scale)), max(1, round(sh * scale)))
                feats = net.features(s, self.style_layers)
                self.style_grams.append({n: vggmod.gram(feats[n]) for n in self.style_layers})

    def level(self, k: int, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(content, style) losses of ``image`` (1 x 3 x h x w, [0, 1]) at level k."""
        wanted = (*self.style_layers, self.content_layer) if self.content_weight else self.style_layers
        feats = self.net.features(image, wanted)
        c = (
            content_loss(feats[self.content_layer], self.content_targets[k])
            if self.content_weight
            else image.new_zeros(())
        )
        s = sum(gram_loss(feats[n], self.style_grams[k][n]) for n in self.style_layers) / len(self.style_layers)
        return c, s

    def __call__(self, images: Sequence[torch.Tensor]):
        """Weighted sum over levels; returns (total, content sum, style sum)."""
        total_c = total_s = 0.0
        for k, image in enumerate(images):
            c, s = self.level(k, image)
            total_c, total_s = total_c + c, total_s + s
        return self.content_weight * total_c + self.style_weight * total_s, total_c, total_s


# ----------------------------------------------------------------------------------------
# structured noise


def permuted_style_colours(style_pixels: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` colours from (P, 3) style pixels: random permutations of them, concatenated."""
    p = style_pixels.shape[0]
    reps = -(-count // p)
    idx = torch.cat([torch.randperm(p, generator=generator) for _ in range(reps)])[:count]
    return style_pixels[idx.to(style_pixels.device)]


def noise_map(style: torch.Tensor, width: int, height: int, spots: int, generator: torch.Generator) -> torch.Tensor:
    """1 x 3 x H x W noise: a grid of permuted style colours, ``spots`` per shortest side, upsampled
    bicubically (``spots`` 0 or at least the shortest side: one colour per pixel)."""
    pixels = style[0].permute(1, 2, 0).reshape(-1, 3)
    short = min(width, height)
    if spots <= 0 or spots >= short:
        gw, gh = width, height
    elif width >= height:
        gw, gh = max(1, round(spots * width / height)), spots
    else:
        gw, gh = spots, max(1, round(spots * height / width))
    grid = permuted_style_colours(pixels, gw * gh, generator).reshape(gh, gw, 3).permute(2, 0, 1)[None]
    if (gw, gh) == (width, height):
        return grid
    return F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=False).clamp(0, 1)


def envelope(width: int, height: int, centre: float, edge: float, sigma: float = 0.5, device=None) -> torch.Tensor:
    """H x W amplitude: ``centre`` at the image centre, ``edge`` on the whole border, Gaussian between.

    Separable: per axis a Gaussian of the offset from the centre (in half sizes, so the border is at 1)
    with standard deviation ``sigma``, rescaled to be 1 at the centre and 0 at the border.
    """

    def axis(n):
        t = (torch.arange(n, device=device, dtype=torch.float32) + 0.5) / n * 2 - 1  # pixel centres in (-1, 1)
        t = t / t.abs().max() if n > 1 else t * 0  # outermost pixel centres at +-1: the border
        if sigma <= 0:
            return (t.abs() < 1e-6).float()
        g = torch.exp(-t * t / (2 * sigma * sigma))
        g1 = math.exp(-1 / (2 * sigma * sigma))
        return ((g - g1) / (1 - g1)).clamp(0, 1)

    shape = axis(height)[:, None] * axis(width)[None, :]
    return edge + (centre - edge) * shape


def gradient_weight(content: torch.Tensor, edge_gradient: float) -> torch.Tensor:
    """H x W in (0, 1]: 1 where the content is flat, exp(-(g / edge_gradient)^2) where its local gradient is g.

    g is the luminance's Sobel gradient magnitude per pixel (a step of 1 between two pixels gives 0.5),
    dilated over 3x3 pixels so both sides of an edge are protected.  ``edge_gradient`` 0: no protection.
    """
    h, w = content.shape[-2:]
    if edge_gradient <= 0:
        return torch.ones(h, w, device=content.device)
    lum = (content * torch.tensor([0.299, 0.587, 0.114], device=content.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    k = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=content.device) / 8
    pad = F.pad(lum, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(pad, k[None, None])
    gy = F.conv2d(pad, k.t()[None, None])
    g = F.max_pool2d((gx * gx + gy * gy).sqrt(), 3, stride=1, padding=1)[0, 0]
    return torch.exp(-((g / edge_gradient) ** 2))


def structured_start(
    content: torch.Tensor,
    style: torch.Tensor,
    noise: Sequence[Sequence[float]],
    generator: torch.Generator,
    sigma: float = 0.5,
    edge_gradient: float = 0.1,
) -> torch.Tensor:
    """The content (1 x 3 x H x W) with every noise level mixed in (see the module docstring)."""
    h, w = content.shape[-2:]
    x = content.clone()
    protect = gradient_weight(content, edge_gradient)
    for spots, centre, edge in noise:
        amount = (envelope(w, h, centre, edge, sigma, content.device) * protect).clamp(0, 1)
        x = x + amount * (noise_map(style, w, h, int(spots), generator) - x)
    return x


# ----------------------------------------------------------------------------------------
# networks (cached: loading and dequantising costs ~0.4 s)

_NETS: dict = {}


def get_vgg(weights: Optional[str] = None, device="cpu", pooling: str = "avg") -> vggmod.VGG19:
    key = (weights, str(device), pooling)
    if key not in _NETS:
        _NETS.clear()  # one network at a time: each holds 80 MB
        _NETS[key] = vggmod.load_vgg19(weights, device=device, pooling=pooling)
    return _NETS[key]


def check_image(name: str, rgb) -> np.ndarray:
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 1:
        raise ImfitError(f"the {name} image must be (H, W, 3) RGB, got shape {rgb.shape}")
    if not np.isfinite(rgb).all():
        raise ImfitError(f"the {name} image holds NaN or infinite values")
    return rgb


# ----------------------------------------------------------------------------------------


def stylize(
    content: np.ndarray,
    style: np.ndarray,
    config: StyleConfig = StyleConfig(),
    *,
    net: Optional[vggmod.VGG19] = None,
    on_progress: Optional[Callable[[Progress], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
) -> StyleResult:
    """Render ``content`` (H, W, 3 in [0, 1]) in the style of ``style``; returns the top level's image."""
    start_time = time.perf_counter()
    config.validate()
    content, style = check_image("content", content), check_image("style", style)
    device = pick_device(config.device)
    net = net or get_vgg(config.weights, device, config.pooling)
    generator = torch.Generator().manual_seed(int(config.seed))
    h0, w0 = content.shape[:2]
    sizes = check_sizes(pyramid_sizes(w0, h0, config.levels, config.base))
    w, h = sizes[-1]
    content_t = to_nchw(content, device)
    style_t = to_nchw(style, device)
    loss_fn = StyleLoss(net, content_t, style_t, sizes, config.content_weight, config.style_weight)
    top_content = resize(content_t, w, h).clamp(0, 1)
    with torch.no_grad():
        x0 = structured_start(top_content, style_t, config.noise, generator, config.envelope, config.edge_gradient)
    x = x0.clone(memory_format=torch.contiguous_format).requires_grad_(True)
    if config.optimizer == "lbfgs":
        opt = torch.optim.LBFGS([x], lr=config.lr or 1.0, max_iter=1, history_size=20)
    else:
        opt = torch.optim.Adam([x], lr=config.lr or 0.02)

    history, parts = [], {}
    loop = Loop(should_stop, on_progress, what="step", keep="kept the best image so far", start=start_time)
    loop.best = x0.detach().clone()

    def closure():
        opt.zero_grad()
        images = [resize(x, lw, lh) for lw, lh in sizes]
        total, c, s = loss_fn(images)
        tv = tv_loss(x)
        loss = total + config.tv_weight * tv
        loss.backward()
        parts.update(
            loss=float(loss.detach()), content=float(c.detach()), style=float(s.detach()), tv=float(tv.detach())
        )
        loop.offer(parts["loss"], lambda: x.detach().clone())  # the image this loss belongs to (before the step)
        return loss

    def preview():
        return to_hwc(loop.best)

    step = 0
    for step in range(1, config.steps + 1):
        if loop.stop_requested(step - 1):
            step -= 1
            break
        opt.step(closure)
        if config.optimizer == "adam":
            with torch.no_grad():
                x.clamp_(0, 1)
        if not loop.finite(parts["loss"], step):
            break
        history.append((step, parts["loss"], parts["content"], parts["style"], parts["tv"]))
        if (now := loop.report_due(force=step in (1, config.steps))) is not None:
            mse = float(((loop.best.clamp(0, 1) - top_content) ** 2).mean())
            on_progress(Progress(step, config.steps, 0, 1, parts["loss"], psnr_of(mse), now, preview))
    if not loop.stopped and config.steps:  # the final image's loss, so the last step counts too
        with torch.no_grad():
            images = [resize(x, lw, lh) for lw, lh in sizes]
            total, _, _ = loss_fn(images)
            if float(total + config.tv_weight * tv_loss(x)) <= loop.best_loss:
                loop.best = x.detach().clone()
    image = to_hwc(loop.best)
    psnr = psnr_of(float(((loop.best.clamp(0, 1) - top_content) ** 2).mean()))
    return StyleResult(
        image, time.perf_counter() - start_time, step, loop.stopped, loop.message, history, to_hwc(x0), psnr
    )
