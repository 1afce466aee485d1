"""Which torch device a job runs on, and one clear error when the one asked for is not there."""

from __future__ import annotations

import sys

import torch

from ..errors import ImfitError


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA, else Apple's MPS, else the CPU; any other name as torch spells it."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)


def check_device(name: str) -> torch.device:
    """``pick_device(name)``, or an ImfitError when a GPU was asked for that this PyTorch cannot use."""
    device = pick_device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ImfitError(
            f"the device is set to CUDA but PyTorch {torch.__version__} in {sys.executable} sees no "
            "CUDA GPU. Choose Auto or CPU, or install a CUDA build of PyTorch"
        )
    if device.type == "mps" and not _mps_available():
        raise ImfitError(
            f"the device is set to MPS but PyTorch {torch.__version__} in {sys.executable} has no "
            "Apple GPU available. Choose Auto or CPU"
        )
    return device
