"""The one way this project reads torch files: `torch.load(weights_only=True)`, never a pickle of anything else."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ImfitError


def load_weights_only(path, what: str, fix: str):
    """A torch file's tensors and plain containers; ImfitError naming `what` the file should be, and `fix`."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ImfitError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise ImfitError(f"{path}: is a folder; expected a file: the {what}") from None
    except Exception as e:  # torch raises many types for broken or foreign files
        raise ImfitError(
            f"{path}: not a readable {what} (torch.load with weights_only=True failed: {type(e).__name__}). {fix}"
        ) from None
