"""``imfit`` / ``python -m imfit_engine``: fit, render, convert, export, stylize and expand from a shell.

One module per subcommand family (``fit``, ``files``, ``style``, ``expand``); ``common`` holds what they
share.  User errors print one line ``imfit: error: ...`` and exit with status 2; Ctrl-C stops a job,
writes the best result so far and exits with status 130.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .. import limits
from ..errors import ImfitError

log = logging.getLogger("imfit")

# subcommand -> (module, function); the modules import torch, which takes seconds: main() imports them
# inside its Ctrl-C handling, so an interrupt during start-up is one line too
COMMANDS = {
    "fit": ("fit", "cmd_fit"),
    "render": ("files", "cmd_render"),
    "convert": ("files", "cmd_convert"),
    "export": ("files", "cmd_export"),
    "stylize": ("style", "cmd_stylize"),
    "expand": ("expand", "cmd_expand"),
}


def build_parser() -> argparse.ArgumentParser:
    from . import expand, files, fit, style

    parser = argparse.ArgumentParser(prog="imfit", description="Fit images with sums of Gabor wavelets.")
    sub = parser.add_subparsers(dest="command", required=True)
    fit.add_parser(sub)
    files.add_parsers(sub)
    expand.add_parser(sub)
    style.add_parser(sub)
    for command in sub.choices.values():
        command.add_argument(
            "--max-memory",
            metavar="SIZE",
            help=f"memory this command may use, e.g. 4G (default: ${limits.ENV}, else "
            f"{limits.AVAILABLE_SHARE:.0%} of the available memory)",
        )
    return parser


class _Formatter(logging.Formatter):
    def format(self, record):
        return f"imfit: {record.levelname.lower()}: {record.getMessage()}"


def _out_of_memory(exc: BaseException) -> bool:
    """MemoryError, or an allocator's failure (torch raises RuntimeError for those)."""
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or (
        isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)
    )


def main(argv=None) -> int:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    saved = log.handlers[:], log.level, log.propagate
    log.handlers[:], log.level, log.propagate = [handler], logging.INFO, False
    try:
        args = build_parser().parse_args(argv)
        module, function = COMMANDS[args.command]
        command = getattr(importlib.import_module(f".{module}", __name__), function)
        with limits.max_memory(limits.parse_size(args.max_memory) if args.max_memory else None):
            return command(args)
    except ImfitError as e:
        print(f"imfit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("imfit: interrupted", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as e:
        if not _out_of_memory(e):
            raise
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        print(
            f"imfit: error: out of memory ({first}). Use fewer wavelets or a smaller size, or lower --max-memory "
            "so the estimate stops it before it starts",
            file=sys.stderr,
        )
        return 2
    finally:
        log.handlers[:], log.level, log.propagate = saved
