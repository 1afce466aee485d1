"""The Blender worker: the engine in a child process that talks in lines (``protocol``).

Blender starts ``python -m imfit_engine.worker run JOB.json`` (or ``probe``, ``install``) with
the extension folder on ``PYTHONPATH``.  Every protocol line on stdout is ``@imfit `` followed
by one JSON object with a ``"type"``; anything else a library prints goes to stderr (fd 1 is
re-pointed there), so stray output can never corrupt the protocol.

Messages, worker -> Blender:

``progress``  iteration, total, level, levels, loss, psnr, elapsed (seconds)
``preview``   path of a PNG of the best fit so far (rewritten atomically every few seconds)
``result``    path of the canonical JSON, preview, psnr, seconds, iterations, stopped, message
``error``     message (one sentence for the user), kind (user / no_torch / out_of_memory / internal)
``probe``     what the interpreter offers: python, torch, cuda, gpu, mps, numpy, pillow
``log``       a line of text worth showing (the installer's)

Blender -> worker: the line ``stop`` on stdin (or SIGTERM, or stdin closing because Blender went
away) stops the fit at the next iteration; the best result so far is still written and sent.

The job file (JSON) names the inputs: ``image``, ``weight`` (or null), ``init`` (a canonical
JSON to warm-start from, or null), ``config`` (``FitConfig.to_dict()``), ``output_dir``,
``preview_seconds`` and ``source_name``.

A sequence job (``imfit_engine.sequence``) has ``sequence`` instead of ``image``:
``{"frames": [{"number", "image", "weight", "stem"}, ...], "keyframe_interval": K, "select": [A, B] or
null}``.  Its progress messages carry ``frame`` (the number); each finished frame sends

``frame``     number, index, count, path, psnr, seconds, keyframe, resumed

and the ``result`` is the output folder (``path``) with ``frames``, the mean ``psnr``, the summed
``seconds``, ``stopped``, ``wavelets`` and ``flicker`` (``Flicker`` fields, or null).

Style jobs (``imfit_engine.style_fit.worker_job``): ``style`` names a style image and ``style_config`` holds
``StyleConfig`` fields.  ``"kind": "stylize"`` makes an image (its ``result`` has ``kind``, ``path`` of the PNG,
``width``, ``height``); a fit job with a ``style`` is a style-guided fit (a fit's ``result``).

``protocol`` (the wire format) imports only the standard library, so Blender's Python uses it; ``main``
(the process: channel, stop requests, errors, probe, install) imports the engine only inside functions,
so ``probe`` can report a missing numpy or torch instead of crashing; ``jobs`` holds the one job table.
"""
