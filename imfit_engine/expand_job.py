"""The worker's ``expand`` job (``imfit_engine.worker``): train or reuse a texture's generator, expand,
optionally fit wavelets to the expansion.

Job file fields (besides the worker's ``image``, ``output_dir``, ``preview_seconds``, ``source_name``)::

    "kind": "expand",
    "expand": {"preset": "cpu-quick", "scale": 2, "overrides": {"iterations": 300, ...},
               "checkpoint": "/cache/brick-cpu-quick.pt" or null, "match": false},
    "config": FitConfig.to_dict() for the wavelet fit of the expansion, or null (image only)

The checkpoint is the generator cache: reused when it was trained on this image with these settings
(``"reused": true`` in the result), resumed when it was stopped, replaced when it belongs to another image.

Messages: ``progress`` as a fit's (iteration, total, level, levels, loss, psnr, elapsed) plus ``phase``
("train" or "fit") and, while training, ``losses`` (adv, style, l1, g, d); ``preview`` (the current 2x
expansion, then the wavelet fit); ``result``: ``path`` (the expanded PNG), ``width``, ``height``,
``scale``, ``reused``, ``iterations`` (the generator's), ``seconds``, ``stopped``, ``message``, and for a
wavelet fit ``fit`` (its canonical JSON), ``preview`` (its PNG), ``psnr``, ``wavelets``.
"""
from __future__ import annotations

import time
from pathlib import Path

from . import expand, images
from .errors import ImfitError

EXPANDED_NAME = "expanded.png"


def run_expand_job(job: dict, channel, should_stop, check_device=None) -> None:
    spec = job.get("expand") or {}
    try:
        scale = int(spec.get("scale", 2))
        overrides = dict(spec.get("overrides") or {})
        config = expand.preset_config(str(spec.get("preset", "cpu-quick")), **overrides)
    except (TypeError, ValueError) as e:
        raise ImfitError(f"the expansion job has bad settings ({e}). This is a bug in the add-on; please report it") \
            from None
    if scale not in expand.SCALES:
        raise ImfitError(f"expansion scale must be 2, 4 or 8, got {scale}")
    if check_device is not None:
        import torch

        check_device(config.device, torch)
    out_dir = Path(job["output_dir"])
    preview_path = out_dir / "preview.png"
    preview_every = float(job.get("preview_seconds", 2.0))
    fit_dict = job.get("config")
    levels = 2 if fit_dict else 1
    rgb = images.load_image(job["image"]).rgb
    last_preview = [time.perf_counter()]

    def maybe_preview(make) -> None:
        if time.perf_counter() - last_preview[0] >= preview_every:
            images.save_png(preview_path, make())
            last_preview[0] = time.perf_counter()
            channel.send("preview", path=str(preview_path))

    def on_train(p) -> None:
        channel.send("progress", iteration=p.iteration, total=p.total, level=0, levels=levels, loss=p.losses["g"],
                     psnr=0.0, elapsed=p.elapsed, phase="train", losses=p.losses)
        maybe_preview(p.preview)

    start = time.perf_counter()
    trained = expand.train(rgb, config, checkpoint=spec.get("checkpoint"), on_mismatch="retrain",
                           on_progress=on_train, should_stop=should_stop)
    expanded = expand.expand(trained.generator, rgb, scale, match=bool(spec.get("match", False)))
    expanded_path = out_dir / EXPANDED_NAME
    images.save_png(expanded_path, expanded)
    result = dict(path=str(expanded_path), width=int(expanded.shape[1]), height=int(expanded.shape[0]),
                  scale=scale, reused=trained.reused, iterations=trained.iterations, stopped=trained.stopped,
                  message=trained.message, fit=None, preview=None, psnr=None, wavelets=0)
    if fit_dict and not trained.stopped:
        result.update(_fit(expanded, fit_dict, job, out_dir, channel, maybe_preview, should_stop))
    result["seconds"] = time.perf_counter() - start
    channel.send("result", **result)


def _fit(expanded, fit_dict: dict, job: dict, out_dir: Path, channel, maybe_preview, should_stop) -> dict:
    from . import pipeline
    from .fit import FitConfig, fit

    config = FitConfig.from_dict(fit_dict)

    def on_fit(p) -> None:
        channel.send("progress", iteration=p.iteration, total=p.total, level=1, levels=2, loss=p.loss, psnr=p.psnr,
                     elapsed=p.elapsed, phase="fit")
        maybe_preview(p.preview)

    name = f"{job.get('source_name') or Path(job['image']).name} expanded"
    fitted = fit(expanded, None, config, on_progress=on_fit, should_stop=should_stop, source_name=name)
    fit_json, fit_png = pipeline.write_result(fitted, out_dir, "fit", "json", preview=True)
    out = dict(fit=str(fit_json), preview=str(fit_png), psnr=fitted.psnr, wavelets=len(fitted.wavelets))
    if fitted.stopped:
        out.update(stopped=True, message=fitted.message)
    return out
