"""What every subcommand shares: Ctrl-C handling, progress bars, argument checks."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from typing import Optional

from ..core.config import CHOICES
from ..errors import ImfitError

DEVICES = CHOICES["device"]


class StopFlag:
    """First Ctrl-C asks the job to stop (keeping the best result); a second one aborts."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, *_):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nimfit: stopping after this step; the best result so far will be written", file=sys.stderr)

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self._old)

    def __call__(self) -> bool:
        return self.requested


class ProgressBar:
    """An ``on_progress`` callback drawing a tqdm bar on a terminal; silent when stderr is a pipe or a file."""

    def __init__(self, label: str, postfix: Optional[Callable] = None, unit: str = "it"):
        self.postfix = postfix
        self._bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=1, desc=label, unit=unit, leave=False, dynamic_ncols=True)

    def __call__(self, progress) -> None:
        if self._bar is None:
            return
        self._bar.total, self._bar.n = progress.total, progress.iteration
        if self.postfix is not None:
            self._bar.set_postfix_str(self.postfix(progress), refresh=True)
        else:
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def fit_postfix(p) -> str:
    return f"level {p.level + 1}/{p.levels} PSNR {p.psnr:.2f} dB"


def check_at_least(*checks: tuple[str, float, Optional[float]]) -> None:
    """(flag, value, lowest) triples; an ImfitError for the first value below its lowest (None: unbounded)."""
    for flag, value, low in checks:
        if low is not None and value < low:
            raise ImfitError(f"{flag} must be at least {low}, got {value}")
