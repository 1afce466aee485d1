"""``imfit`` / ``python -m imfit_engine``: fit, render, convert, export, stylize and expand from a shell.

One module per subcommand family (``fit``, ``files``, ``style``, ``expand``); ``common`` holds what they
share.  User errors print one line ``imfit: error: ...`` and exit with status 2; Ctrl-C stops a job,
writes the best result so far and exits with status 130.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..errors import ImfitError
from . import expand, files, fit, style

log = logging.getLogger("imfit")

COMMANDS = {
    "fit": fit.cmd_fit,
    "render": files.cmd_render,
    "convert": files.cmd_convert,
    "export": files.cmd_export,
    "stylize": style.cmd_stylize,
    "expand": expand.cmd_expand,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imfit", description="Fit images with sums of Gabor wavelets.")
    sub = parser.add_subparsers(dest="command", required=True)
    fit.add_parser(sub)
    files.add_parsers(sub)
    expand.add_parser(sub)
    style.add_parser(sub)
    return parser


class _Formatter(logging.Formatter):
    def format(self, record):
        return f"imfit: {record.levelname.lower()}: {record.getMessage()}"


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    saved = log.handlers[:], log.level, log.propagate
    log.handlers[:], log.level, log.propagate = [handler], logging.INFO, False
    try:
        return COMMANDS[args.command](args)
    except ImfitError as e:
        print(f"imfit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("imfit: interrupted", file=sys.stderr)
        return 130
    finally:
        log.handlers[:], log.level, log.propagate = saved
