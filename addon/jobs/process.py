"""A worker subprocess read without blocking: reader threads turn its output into a message queue.

Blender's UI thread only ever drains the queue (``messages``), so a busy, silent or dead
worker can never freeze it.  The last message is always ``{"type": "exit", ...}``, put there
by the stdout reader once the process has ended, with its exit code and the tail of stderr:
a worker that dies without a result is noticed through it.  No bpy here.
"""

from __future__ import annotations

import collections
import os
import queue
import signal
import subprocess
import threading

from ..engine import ImfitError, protocol

STDERR_TAIL_LINES = 30


def exit_description(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed ({name})"
    return f"exited with code {returncode}"


class WorkerProcess:
    def __init__(self, argv: list[str], env: dict | None = None, cwd: str | None = None):
        self.argv = list(argv)
        self.env = env
        self.cwd = cwd
        self._proc: subprocess.Popen | None = None
        self._queue: queue.Queue = queue.Queue()
        self._stderr_tail: collections.deque = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._stderr_thread: threading.Thread | None = None
        self.exited = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        try:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env,
                cwd=self.cwd,
                text=True,
                encoding="utf-8",
                errors="replace",
                bufsize=1,
                # its own session: a Ctrl-C in Blender's terminal must not kill the fit's result
                start_new_session=(os.name == "posix"),
            )
        except OSError as e:
            raise ImfitError(
                f"cannot start the engine's Python {self.argv[0]}: {e.strerror or e}. "
                "Check the Python path in the ImFit add-on preferences"
            ) from None
        self._stderr_thread = threading.Thread(target=self._read_stderr, name="imfit-stderr", daemon=True)
        self._stderr_thread.start()
        threading.Thread(target=self._read_stdout, name="imfit-stdout", daemon=True).start()

    def _read_stderr(self) -> None:
        for line in self._proc.stderr:
            if line.strip():
                self._stderr_tail.append(line.rstrip())

    def _read_stdout(self) -> None:
        for line in self._proc.stdout:
            message = protocol.decode_line(line)
            if message is not None:
                self._queue.put(message)
            elif line.strip():
                self._stderr_tail.append(line.rstrip())  # stray output: kept for the error report
        returncode = self._proc.wait()
        self._stderr_thread.join(timeout=5.0)
        self._queue.put({"type": "exit", "returncode": returncode, "stderr": self.stderr_tail()})

    def stderr_tail(self, lines: int = STDERR_TAIL_LINES) -> str:
        return "\n".join(list(self._stderr_tail)[-lines:])

    def messages(self, timeout: float = 0.0) -> list[dict]:
        """Every message received so far; waits up to ``timeout`` seconds for the first one."""
        out = []
        try:
            out.append(self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait())
            while True:
                out.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        if any(m["type"] == "exit" for m in out):
            self.exited = True
        return out

    def request_stop(self) -> None:
        """Ask the worker to stop and send its best result (the ``stop`` line)."""
        if self._proc is None or self._proc.poll() is not None:
            return
        try:
            self._proc.stdin.write(protocol.STOP_LINE + "\n")
            self._proc.stdin.flush()
        except (OSError, ValueError):
            pass  # already gone: its exit message tells the rest

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()

    def shutdown(self, grace: float = 3.0) -> None:
        """Stop, wait a little for a clean end, then kill: nothing outlives the add-on."""
        if self._proc is None or self._proc.poll() is not None:
            return
        self.request_stop()
        try:
            self._proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=grace)
