"""Headless batch fits of image sequences and movies, for scripts and render farms.

    blender -b [file.blend] -c gabor_imfit fit PATH [options] [--blend OUT.blend]
    blender -b [file.blend] -c gabor_imfit merge DIR [DIR ...] --blend OUT.blend
    blender -b --python <extension folder>/addon/batch.py -- fit PATH [options]   (the same, as a script)

``fit`` runs the engine's ``imfit fit PATH --mode video`` in the engine's Python (the one the
add-on's preferences choose, or ``--python``), so it takes exactly the engine CLI's options
(``--num-gabors``, ``--size``, ``--iterations``, ``--keyframes``, ``--frames A-B``, ``--output-dir``...)
and prints its progress lines; each frame's fit is written to the output folder as it finishes, so
running the same command again resumes a killed run.  PATH is a folder of frames, or a movie
(Blender decodes it into ``<output-dir>/source/`` first).  Then the frames are keyed on one node
group ``ImFit <name>`` (with a preview plane) and, with ``--blend``, the file is saved.
``merge`` keys the frames of several output folders (the shards of one run, ``--frames A-B`` on
each machine) on one group.  The same entry is ``main(argv) -> int`` (0 done, 1 failed, 2 bad
arguments or input, 130 interrupted); errors are one line ``imfit batch: error: ...`` on stderr.
``fit --ray [ADDRESS]`` (with ``--ray-cpus``, ``--ray-gpus``) passes through to the engine like its other
options: the engine fits on a Ray cluster (``imfit_engine/cluster.py``), then the group is keyed here.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and not __package__:  # blender -b --python .../addon/batch.py -- ...

    def _run_installed_copy() -> int:
        """Run ``main`` of the enabled extension this file belongs to (relative imports need its package)."""
        import importlib
        from pathlib import Path

        import addon_utils

        root = Path(__file__).resolve().parent.parent
        names = [m.__name__ for m in addon_utils.modules() if Path(m.__file__).resolve().parent == root]
        if not names:
            print(
                f"imfit batch: error: {root} is not an installed Blender extension: install Gabor ImFit, or use "
                "blender -b -c gabor_imfit ...",
                file=sys.stderr,
            )
            return 2
        addon_utils.enable(names[0], default_set=False)
        argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
        return importlib.import_module(f"{names[0]}.addon.batch").main(argv)

    sys.exit(_run_installed_copy())

import argparse
import re
import subprocess
import threading
from pathlib import Path

import bpy

from .engine import ImfitError, formats
from .engine import sequence as frames_engine
from .jobs import interpreter
from .jobs.sequence import write_frame_files
from .nodes import scene as preview_scene
from .nodes.keyframes import INTERPOLATIONS, build_keyed_group
from .nodes.plane import PLANE_HEIGHT
from .ui.pref import get_preferences

COMMAND = "gabor_imfit"  # blender -c gabor_imfit ...
PROG = f"blender -b -c {COMMAND}"
MOVIE_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ogv", ".flv", ".wmv")


class _ArgumentError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """Errors as exceptions: a CLI command must return its status, not exit Blender."""

    def error(self, message):
        raise _ArgumentError(f"{self.prog}: {message}")

    def exit(self, status=0, message=None):
        if message:
            print(message, file=sys.stderr if status else sys.stdout)
        raise SystemExit(status)


def _scene_args(p) -> None:
    p.add_argument("--blend", help="save the file with the keyed node group here")
    p.add_argument("--name", help="the node group is 'ImFit NAME' (default: the frames' name)")
    p.add_argument(
        "--interpolation",
        choices=[i[0] for i in INTERPOLATIONS],
        default="LINEAR",
        help="how wavelets move between keyed frames (default %(default)s)",
    )
    p.add_argument("--no-plane", action="store_true", help="no preview plane, only the node group")
    p.add_argument(
        "--camera",
        action="store_true",
        help="add a camera framing the plane and set the render size to the frames' size",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, description="Fit image sequences in the background and key them on a node group.", allow_abbrev=False
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    fit = sub.add_parser(
        "fit",
        allow_abbrev=False,
        usage=f"{PROG} fit PATH [options]",
        help="fit a folder of frames or a movie, then key the result",
        epilog="Every other option is the engine's: see `imfit fit --help` (--num-gabors, --size, "
        "--iterations, --keyframes, --frames A-B, --seed, --device, --ray [ADDRESS] ...).",
    )
    fit.add_argument("--output-dir", default="results", help="where each frame's fit goes (default %(default)s)")
    fit.add_argument("--python", help="the Python that runs the engine (default: the add-on's)")
    _scene_args(fit)
    merge = sub.add_parser("merge", allow_abbrev=False, help="key the frames of several output folders (shards)")
    merge.add_argument("folders", nargs="+", help="output folders of a sequence fit's shards")
    _scene_args(merge)
    return parser


def _parse(argv: list[str]):
    """(namespace, engine arguments): ``fit PATH`` forwards every option it does not know."""
    parser = build_parser()
    if argv[:1] != ["fit"] or {"-h", "--help"} & set(argv):
        return parser.parse_args(argv), []  # merge, help, or a mistake argparse explains
    if len(argv) < 2 or argv[1].startswith("-"):
        raise _ArgumentError(f"{PROG} fit: give the frames' folder or movie first: fit PATH [options]")
    a, engine_args = parser.parse_known_args(["fit", *argv[2:]])
    a.path = argv[1]
    if "--mode" in engine_args:
        raise _ArgumentError(f"{PROG} fit: it fits sequences (--mode video): leave out --mode")
    return a, engine_args


# ----------------------------------------------------------------------------------------


def _frames_folder(path: Path, out_dir: Path) -> Path:
    """PATH's frames: the folder itself, or a movie decoded into <out_dir>/source/."""
    if path.is_dir():
        return path
    if not path.is_file():
        raise ImfitError(f"{path} does not exist: give a folder of frames or a movie file")
    if path.suffix.lower() not in MOVIE_SUFFIXES:
        raise ImfitError(
            f"{path} is not a folder of frames or a movie ({', '.join(MOVIE_SUFFIXES)}): put the "
            "frames in a folder, or use `imfit fit` for a single image"
        )
    movie = bpy.data.images.load(str(path), check_existing=False)
    try:
        if movie.source != "MOVIE" or movie.frame_duration < 1:
            raise ImfitError(f"Blender cannot decode {path} as a movie: convert it, or export its frames to a folder")
        folder = out_dir / "source"
        print(f"decoding {movie.frame_duration} frames of {path.name} into {folder}", flush=True)
        write_frame_files(movie, list(range(1, movie.frame_duration + 1)), str(folder), path.stem)
    finally:
        bpy.data.images.remove(movie)
    return folder


def _forward(stream, to) -> None:
    for line in stream:
        print(line.rstrip("\n"), file=to, flush=True)


def _run_engine(argv: list[str], env: dict) -> int:
    """Run the engine CLI with its lines on our stdout/stderr (piped: no terminal progress bars)."""
    proc = subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        bufsize=1,
    )
    errors = threading.Thread(target=_forward, args=(proc.stderr, sys.stderr), daemon=True)
    errors.start()
    try:
        _forward(proc.stdout, sys.stdout)
        code = proc.wait()
    except KeyboardInterrupt:
        proc.terminate()  # the engine stops after its current step; finished frames stay
        proc.wait()
        raise
    errors.join(timeout=5.0)
    return code


def _engine(a) -> tuple[str, dict]:
    if a.python:
        return a.python, interpreter.worker_environment([])
    return interpreter.engine_python(get_preferences())


def _default_name(files) -> str:
    """The frames' common name: the first frame's source file name without its number."""
    first = formats.load_json(files[0].path).meta.get("source", {}).get("name") or "sequence"
    stem = Path(first).stem
    return re.sub(r"\d+(?!.*\d)", "", stem).rstrip("_-. ") or stem


def _key(a, folders) -> int:
    files = frames_engine.collect(folders)
    gaps = frames_engine.missing_frames(files)
    if gaps:
        print(
            f"imfit batch: warning: frames {gaps[0]}..{gaps[-1]} ({len(gaps)}) are missing: keys interpolate "
            "across them (merge every shard to fill them)",
            file=sys.stderr,
            flush=True,
        )
    scene = bpy.context.scene
    name = a.name or _default_name(files)
    group, plane = build_keyed_group(scene, name, files, a.interpolation, not a.no_plane)
    first, last = files[0].number, files[-1].number
    scene.frame_start, scene.frame_end = first, last
    if a.camera:
        source = formats.load_json(files[0].path).meta["source"]
        preview_scene.add_camera_framing(scene, source["width"], source["height"], PLANE_HEIGHT)
        preview_scene.setup_render(scene, "CYCLES", source["width"], source["height"])
    print(
        f"keyed {len(files)} frames ({first}-{last}) on node group {group.name!r}"
        + (f" and plane {plane.name!r}" if plane else ""),
        flush=True,
    )
    if a.blend:
        blend = os.path.abspath(a.blend)
        os.makedirs(os.path.dirname(blend), exist_ok=True)
        bpy.ops.wm.save_as_mainfile(filepath=blend)
        print(f"saved {blend}", flush=True)
    return 0


def _fit(a, engine_args: list[str]) -> int:
    out_dir = Path(a.output_dir)
    folder = _frames_folder(Path(a.path), out_dir)
    python, env = _engine(a)
    argv = [
        python,
        "-u",
        "-m",
        "imfit_engine",
        "fit",
        str(folder),
        "--mode",
        "video",
        *engine_args,
        "--output-dir",
        str(out_dir),
    ]
    code = _run_engine(argv, env)
    if code != 0:
        return code  # the engine said why on stderr; its finished frames are kept for a re-run
    return _key(a, [out_dir])


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        a, engine_args = _parse(argv)
        return _fit(a, engine_args) if a.command == "fit" else _key(a, a.folders)
    except _ArgumentError as e:
        print(e, file=sys.stderr)
        return 2
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else 0
    except ImfitError as e:
        print(f"imfit batch: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("imfit batch: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except OSError as e:
        print(f"imfit batch: error: {e}", file=sys.stderr)
        return 1


def _command(argv) -> int:
    return main(list(argv))


_handle = None


def register_command() -> None:
    global _handle
    _handle = bpy.utils.register_cli_command(COMMAND, _command)


def unregister_command() -> None:
    global _handle
    if _handle is not None:
        bpy.utils.unregister_cli_command(_handle)
        _handle = None
