"""Gabor ImFit engine: fit images with sums of Gabor wavelets (torch, numpy, pillow; never bpy).

The parameter space is defined in `model`; `render` re-synthesises, `fit` optimises,
`formats` reads and writes fits, `cli` is the `imfit` command.
"""
__version__ = "0.1.0"
