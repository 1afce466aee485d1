"""The bookkeeping every optimisation loop shares (fit, style fit, stylize, expansion training).

A loop asks ``stop_requested`` before each step, passes each loss through ``finite`` (the
non-finite guard), offers its state to ``offer`` (the best so far) and asks ``report_due`` after each
step whether to report progress (throttled to one report per ``every`` seconds unless forced).  ``stopped`` and
``message`` then say why it ended early, in words for the user.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Optional


class Loop:
    def __init__(
        self,
        should_stop: Optional[Callable[[], bool]] = None,
        on_progress: Optional[Callable] = None,
        *,
        what: str = "iteration",
        keep: str = "kept the best result so far",
        every: float = 0.25,
        start: Optional[float] = None,
    ):
        self.should_stop = should_stop
        self.on_progress = on_progress
        self.what, self.keep, self.every = what, keep, every
        self.start = time.perf_counter() if start is None else start
        self.stopped, self.message = False, ""
        self.best_loss: float = math.inf
        self.best: Any = None
        self._last_report = -math.inf

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def _end(self, why: str, step: int | str, keep: Optional[str]) -> None:
        self.stopped = True
        self.message = f"{why} at {self.what} {step}; {keep or self.keep}"

    def stop_requested(self, step: int | str) -> bool:
        """True (and the loop is marked stopped) when the user asked to stop."""
        if self.should_stop is not None and self.should_stop():
            self._end("stopped on request", step, None)
            return True
        return False

    def finite(self, value: float, step: int | str, keep: Optional[str] = None) -> bool:
        """False (and the loop is marked stopped) when the loss is NaN or infinite."""
        if math.isfinite(value):
            return True
        self._end("the loss became non-finite", step, keep)
        return False

    def offer(self, value: float, snapshot: Callable[[], Any]) -> bool:
        """Keep ``snapshot()`` as the best state when ``value`` is the lowest loss so far."""
        if value < self.best_loss:
            self.best_loss, self.best = value, snapshot()
            return True
        return False

    def report_due(self, force: bool = False) -> Optional[float]:
        """The elapsed seconds when a progress report is due (someone listens, and ``every`` seconds have
        passed since the last one, or ``force``); None otherwise.  The caller then calls ``on_progress``."""
        if self.on_progress is None:
            return None
        now = self.elapsed()
        if not (force or now - self._last_report >= self.every):
            return None
        self._last_report = now
        return now
