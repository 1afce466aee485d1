"""Style-guided wavelet fits, and the file-level style jobs shared by the CLI and the Blender worker.

``fit_style(content, style, fit_config, style_config)`` fits wavelets to a content image with the
style transfer losses of ``style.transfer`` on their rendering:

1. *Start*: an ordinary fit (``core.fit.fit``, the given ``FitConfig``) of the structured-noise start image
   (the content with permuted style colours mixed in, ``style.structured_start``), or a warm start.
2. *Style phase*: ``style_config.steps`` Adam steps on the wavelets (the fitter's internal
   parametrisation and per-column rates, its constraints after every step) minimising
   content + style losses summed over the pyramid levels, plus total variation.  The field is
   rendered natively at every level's size (no resizing: a wavelet field has no resolution).

The result is an ordinary ``FitResult`` (``meta["settings"]["style"]`` records the style settings), so everything
that takes a fit (formats, node groups, exports) takes it too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..core.config import FitConfig
from ..core.device import pick_device
from ..core.fit import FitResult, Progress, fit
from ..core.loop import Loop
from ..core.metrics import psnr_of
from ..core.model import WaveletSet
from ..core.optim import WaveletAdam, project
from ..core.params import render_internal, to_canonical, to_internal
from ..core.render import to_image
from ..errors import ImfitError
from ..io import images
from . import transfer as st
from .config import StyleConfig

STYLIZED_NAME = "stylized.png"


def _nchw(signed_hw3: torch.Tensor) -> torch.Tensor:
    return to_image(signed_hw3).permute(2, 0, 1)[None]


def fit_style(
    content: np.ndarray,
    style: np.ndarray,
    fit_config: FitConfig = FitConfig(),
    style_config: StyleConfig = StyleConfig(),
    *,
    init: Optional[WaveletSet] = None,
    net=None,
    on_progress: Optional[Callable[[Progress], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    source_name: str = "",
) -> FitResult:
    """Fit ``fit_config.num_wavelets`` wavelets to ``content`` with style losses against ``style``."""
    start_time = time.perf_counter()
    style_config.validate()
    content = st.check_image("content", content)
    style = st.check_image("style", style)
    device = pick_device(fit_config.device)
    net = net or st.get_vgg(style_config.weights, device, style_config.pooling)
    h0, w0 = content.shape[:2]
    aspect = w0 / h0
    sizes = st.check_sizes(st.pyramid_sizes(w0, h0, style_config.levels, style_config.base))
    content_t, style_t = st.to_nchw(content, device), st.to_nchw(style, device)
    steps = int(style_config.steps)

    # phase 1: an ordinary fit of the structured-noise start (or the warm start as it is)
    stop = should_stop or (lambda: False)

    def first_progress(p: Progress) -> None:
        if on_progress is not None:
            on_progress(
                Progress(
                    p.iteration,
                    p.total + steps,
                    p.level,
                    p.levels + 1,
                    p.loss,
                    p.psnr,
                    time.perf_counter() - start_time,
                    p.preview,
                )
            )

    if init is None:
        generator = torch.Generator().manual_seed(int(style_config.seed))
        with torch.no_grad():
            start = st.structured_start(
                content_t, style_t, style_config.noise, generator, style_config.envelope, style_config.edge_gradient
            )
        first = fit(
            st.to_hwc(start), None, fit_config, on_progress=first_progress, should_stop=stop, source_name=source_name
        )
        params, iterations, levels_before = first.wavelets.params, first.iterations, fit_config.rescales + 1
        if first.stopped:
            return _result(
                first.wavelets.params,
                content_t,
                aspect,
                sizes,
                w0,
                h0,
                fit_config,
                style_config,
                source_name,
                start_time,
                first.iterations,
                True,
                first.message,
                first.history,
                device,
            )
    else:
        params, iterations, levels_before = init.params[: fit_config.num_wavelets], 0, 0

    # phase 2: content + style losses on the field rendered natively at every pyramid level
    loss_fn = st.StyleLoss(net, content_t, style_t, sizes, style_config.content_weight, style_config.style_weight)
    internal = to_internal(torch.as_tensor(np.asarray(params), dtype=torch.float32, device=device))
    internal.requires_grad_(True)
    opt = WaveletAdam(internal, style_config.lr or fit_config.lr)
    top_w, top_h = sizes[-1]
    top_content = st.resize(content_t, top_w, top_h).clamp(0, 1)
    loop = Loop(stop, on_progress, what="style step", start=start_time)
    loop.best = internal.detach().clone()
    history = []
    total = iterations + steps
    levels = levels_before + 1

    def preview():
        with torch.no_grad():
            return st.to_hwc(_nchw(render_internal(loop.best, aspect, top_w, top_h)))

    for k in range(steps):
        if loop.stop_requested(k):
            break
        renders = [_nchw(render_internal(internal, aspect, w, h)) for w, h in sizes]
        loss, c, s = loss_fn(renders)
        loss = loss + style_config.tv_weight * st.tv_loss(renders[-1])
        value = float(loss.detach())
        if not loop.finite(value, k):
            break
        loop.offer(value, lambda: internal.detach().clone())
        (grad,) = torch.autograd.grad(loss, internal)
        opt.step(grad)
        project(internal, aspect, top_w, top_h)
        iterations += 1
        if k % 10 == 0 or k == steps - 1:
            history.append((iterations, levels - 1, value, float("nan")))
        if (now := loop.report_due(force=k in (0, steps - 1))) is not None:
            with torch.no_grad():
                mse = float(((renders[-1].detach() - top_content) ** 2).mean())
            on_progress(Progress(iterations, total, levels - 1, levels, value, psnr_of(mse), now, preview))
    if not loop.stopped and steps:
        with torch.no_grad():
            renders = [_nchw(render_internal(internal, aspect, w, h)) for w, h in sizes]
            loss, _, _ = loss_fn(renders)
            if float(loss + style_config.tv_weight * st.tv_loss(renders[-1])) <= loop.best_loss:
                loop.best = internal.detach().clone()
    with torch.no_grad():
        params = to_canonical(loop.best).cpu().numpy().astype(np.float32)
    return _result(
        params,
        content_t,
        aspect,
        sizes,
        w0,
        h0,
        fit_config,
        style_config,
        source_name,
        start_time,
        iterations,
        loop.stopped,
        loop.message,
        history,
        device,
    )


def _result(
    params,
    content_t,
    aspect,
    sizes,
    w0,
    h0,
    fit_config,
    style_config,
    source_name,
    start_time,
    iterations,
    stopped,
    message,
    history,
    device,
) -> FitResult:
    w, h = sizes[-1]
    with torch.no_grad():
        p = torch.as_tensor(params, device=device)
        out = _nchw(render_internal(to_internal(p), aspect, w, h))
        psnr = psnr_of(float(((out - st.resize(content_t, w, h).clamp(0, 1)) ** 2).mean()))
    seconds = time.perf_counter() - start_time
    ws = WaveletSet(
        np.asarray(params, dtype=np.float32),
        w0,
        h0,
        meta={
            "source": {"width": w0, "height": h0, "name": source_name},
            "settings": dict(fit_config.to_dict(), style=style_config.to_dict()),
            "metrics": {
                "psnr": psnr,
                "seconds": seconds,
                "iterations": iterations,
                "stopped": stopped,
                "train_width": w,
                "train_height": h,
                "device": str(device),
            },
        },
    )
    return FitResult(ws, psnr, seconds, iterations, stopped, history, message)


# ----------------------------------------------------------------------------------------
# file-level jobs (CLI and worker)


def load_rgb(path, what: str) -> np.ndarray:
    """An image file's RGB in [0, 1]; transparency is ignored (style images have no weights)."""
    try:
        return images.load_image(path).rgb
    except ImfitError as e:
        raise ImfitError(f"{what} image: {e}") from None


def stylize_file(
    content_path, style_path, out_path, config: StyleConfig, *, on_progress=None, should_stop=None
) -> st.StyleResult:
    result = st.stylize(
        load_rgb(content_path, "content"),
        load_rgb(style_path, "style"),
        config,
        on_progress=on_progress,
        should_stop=should_stop,
    )
    images.save_png(out_path, result.image)
    return result


def fit_style_file(
    content_path,
    style_path,
    fit_config: FitConfig,
    style_config: StyleConfig,
    *,
    init: Optional[WaveletSet] = None,
    on_progress=None,
    should_stop=None,
) -> FitResult:
    if fit_config.preset != "default":
        raise ImfitError("a style-guided fit uses the default preset; drop --preset seed or --style")
    return fit_style(
        load_rgb(content_path, "content"),
        load_rgb(style_path, "style"),
        fit_config,
        style_config,
        init=init,
        on_progress=on_progress,
        should_stop=should_stop,
        source_name=Path(content_path).name,
    )
