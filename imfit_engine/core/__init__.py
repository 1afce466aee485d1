"""The wavelet core: the parameter space, the renderer, the fitter and what they share.

``model`` (numpy) defines the 12 columns and ``config`` (standard library) the fit settings; both
are torch-free so Blender's Python can read them.  Everything else here needs torch:
``render`` (reference and tiled renderer), ``fit`` (the coarse-to-fine fitter), ``params``
(its internal parametrisation), ``init`` (seeding and the carrier solve), ``optim`` (Adam,
plateau decay, constraints), ``loop`` (the bookkeeping every optimisation loop shares),
``targets`` (pyramid targets and losses), ``metrics``, ``device`` and ``seed_preset``
(torch-imfit's own algorithm, the benchmark's baseline).
"""
