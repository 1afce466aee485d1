"""The Blender side of the GUI tier: runs inside a real Blender window (Blender's own Python, started by
``tools/blender_ui/run_session.sh``), drives the UI from one generator stepped by ``bpy.app.timers``, measures
and takes screenshots, and writes ``results.json`` for the pytest side to assert on.

A driver script is ``run(main)`` with ``main(session)`` a generator: it yields the seconds to wait before its
next step (``yield from session.wait_until(...)`` waits for a condition), so Blender keeps drawing and
handling events between steps, as it does for a user.  The add-on is driven through public things: operator
idnames, the ImFit panels, ``scene.imfit`` and the preferences; only measurements read the add-on's internals
(``addon_module``).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
import traceback

import bpy

with open(os.environ["UI_PARAMS"], encoding="utf-8") as _f:
    PARAMS = json.load(_f)
OUT = PARAMS["out"]
MODULE = "bl_ext.user_default.gabor_imfit"  # the extension's package once installed from the zip


def addon_module(name: str):
    """An add-on module for measurements (``jobs.fit``...)."""
    return importlib.import_module(f"{MODULE}.addon.{name}")


def active_job():
    return addon_module("jobs.fit").active_job()


def job_running() -> bool:
    """As the panel sees it: Fit is refused while a job runs."""
    return not bpy.ops.imfit.fit.poll()


def main_window():
    return bpy.context.window_manager.windows[0]


def area_of(kind: str, window=None):
    for area in (window or main_window()).screen.areas:
        if area.type == kind:
            return area
    return None


def region_of(area, kind: str = "WINDOW"):
    for region in area.regions:
        if region.type == kind:
            return region
    return None


def override(area, region_kind: str = "WINDOW", window=None) -> dict:
    window = window or main_window()
    return {"window": window, "screen": window.screen, "area": area, "region": region_of(area, region_kind)}


def redraw_everything() -> None:
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            area.tag_redraw()


def worker_pids() -> list[int]:
    """Engine workers started by this Blender (children running ``imfit_engine.worker``)."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == me and "imfit_engine.worker" in cmdline and " run " in cmdline:
            found.append(int(entry))
    return found


def cpu_seconds() -> float:
    """CPU time Blender has used so far, all its threads (user + system)."""
    with open("/proc/self/stat", encoding="utf-8") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def pixels_digest(image) -> str | None:
    """A digest of an image's pixels (None while it has none): tells one preview from the next."""
    import hashlib

    import numpy as np

    count = len(image.pixels) if image is not None else 0
    if not count:
        return None
    values = np.empty(count, dtype=np.float32)
    image.pixels.foreach_get(values)
    return hashlib.sha1(np.round(values, 4).tobytes()).hexdigest()[:16]


class Session:
    def __init__(self):
        self.results: dict = {
            "params": PARAMS,
            "blender": bpy.app.version_string,
            "shots": {},
            "draws": {},
            "errors": [],
        }
        self.t0 = time.monotonic()
        self.beats: list[float] = []
        self._beating = False
        self._xwd: list[subprocess.Popen] = []

    # -- records

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 3)

    def __setitem__(self, key, value):
        self.results[key] = value

    def __getitem__(self, key):
        return self.results[key]

    def log(self, text: str) -> None:
        print(f"[ui-driver {self.now():7.2f}] {text}", flush=True)

    # -- screenshots: xwd is started and not waited for, so taking one never stalls Blender's timers

    def shot(self, name: str) -> str:
        path = os.path.join(OUT, f"{name}.xwd")
        self._xwd.append(subprocess.Popen(["xwd", "-root", "-silent", "-out", path]))
        self.results["shots"][name] = self.now()
        self.log(f"screenshot {name}")
        return os.path.join(OUT, f"{name}.png")

    def shot_png(self, name: str) -> str:
        """A screenshot as PNG now (blocks ~1 s): for a driver that reads its pixels."""
        png = os.path.join(OUT, f"{name}.png")
        subprocess.run(f"xwd -root -silent | convert xwd:- {png}", shell=True, check=True)
        self.results["shots"][name] = self.now()
        return png

    # -- heartbeat: a timer of its own, so the gaps measure how often Blender runs timers at all

    def start_beats(self) -> None:
        self.beats, self._beating = [], True

        def beat():
            if not self._beating:
                return None
            self.beats.append(time.monotonic() - self.t0)
            return 0.05

        bpy.app.timers.register(beat, first_interval=0.0, persistent=True)

    def stop_beats(self) -> list[float]:
        self._beating = False
        return [round(b, 3) for b in self.beats]

    # -- draw counters: a panel or preferences class whose draw is counted (exceptions recorded)

    def count_draws(self, cls, key: str) -> None:
        counter = self.results["draws"].setdefault(key, {"count": 0, "errors": []})
        original = cls.draw

        def draw(panel, context):
            counter["count"] += 1
            try:
                return original(panel, context)
            except Exception as e:
                counter["errors"].append(f"{type(e).__name__}: {e}")
                raise

        cls.draw = draw

    def count_status_bar_draws(self) -> None:
        """Record when the status bar draws (a function of ours appended to its header, as the add-on's is)."""
        times = self.results.setdefault("status_bar_draws", [])

        def draw(header, context):
            times.append(self.now())

        bpy.types.STATUSBAR_HT_header.append(draw)

    def draws(self, key: str) -> int:
        return self.results["draws"].get(key, {}).get("count", 0)

    # -- waiting

    def wait_until(self, condition, timeout: float, step: float = 0.05):
        """``yield from`` this: True once ``condition()`` holds, False after ``timeout`` seconds."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if condition():
                return True
            yield step
        return bool(condition())

    def frames(self, n: int = 3, step: float = 0.2):
        """Let Blender redraw a few times."""
        for _ in range(n):
            redraw_everything()
            yield step

    # -- the end

    def save(self) -> str:
        """results.json as it stands (atomically): what a step measured survives a crash in a later one."""
        self.results["seconds"] = self.now()
        path = os.path.join(OUT, "results.json")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(self.results, f, indent=1, default=str)
        os.replace(path + ".tmp", path)
        return path

    def finish(self) -> None:
        for p in self._xwd:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        self.log(f"results written to {self.save()}")


def run(main) -> None:
    """Step ``main(session)`` from a timer until it ends (or fails: the traceback goes into the results),
    then write the results and quit Blender."""
    session = Session()
    generator = main(session)
    deadline = time.monotonic() + float(PARAMS.get("timeout", 300))

    def finish_and_quit():
        session.finish()
        bpy.context.preferences.view.use_save_prompt = False
        bpy.ops.wm.quit_blender()

    def step():
        try:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the driver ran past its {PARAMS.get('timeout', 300)} s")
            delay = next(generator)
        except StopIteration:
            finish_and_quit()
            return None
        except Exception as e:
            session.results["errors"].append(f"{type(e).__name__}: {e}")
            session.results["traceback"] = traceback.format_exc()
            traceback.print_exc()
            finish_and_quit()
            return None
        return max(0.0, float(delay if delay is not None else 0.05))

    # persistent: the driver survives the files it opens
    bpy.app.timers.register(step, first_interval=float(PARAMS.get("first_delay", 1.0)), persistent=True)


# ----------------------------------------------------------------------------------------
# reading the screen: what a user sees, to find where to click


def screen_pixels(session: Session, name: str):
    """A screenshot as an (H, W, 3) float array in [0, 1] with row 0 at the BOTTOM (Blender's window and event
    coordinates)."""
    import numpy as np

    image = bpy.data.images.load(session.shot_png(name), check_existing=False)
    try:
        width, height = image.size
        values = np.empty(width * height * 4, dtype=np.float32)
        image.pixels.foreach_get(values)
    finally:
        bpy.data.images.remove(image)
    return values.reshape(height, width, 4)[..., :3]


def _runs(mask) -> list[tuple[int, int]]:
    """(first, last) index of each run of True in a 1-D mask."""
    runs, start = [], None
    for i, on in enumerate(list(mask) + [False]):
        if on and start is None:
            start = i
        elif not on and start is not None:
            runs.append((start, i - 1))
            start = None
    return runs


def sidebar_headers(pixels, region) -> list[int]:
    """Window y (bottom-up) of the text rows at the left edge of a sidebar, bottom first, above the region's
    empty bottom: the last ones are the ImFit panel's closed sub-panel headers (Expand Texture, Style, Losses)."""
    x0, x1 = region.x + 8, region.x + 60
    strip = pixels[region.y : region.y + region.height, x0:x1]
    empty = strip[0].mean()
    bottom = 0
    while bottom < len(strip) and abs(strip[bottom].mean() - empty) < 0.01:
        bottom += 1
    bright = strip.max(axis=(1, 2)) > 0.55
    return [region.y + (a + b) // 2 for a, b in _runs(bright) if a >= bottom]


def cancel_button(pixels, region) -> tuple[int, int] | None:
    """Window (x, y) of the Cancel button of a region's ImFit panel while a job runs: the bright icon at the
    right end of the row whose progress bar is (partly) blue."""

    part = pixels[region.y : region.y + region.height, region.x : region.x + region.width]
    blue = (part[..., 2] > 0.55) & (part[..., 0] < 0.45) & (part[..., 2] - part[..., 0] > 0.25)
    rows = _runs(blue.sum(axis=1) >= 3)
    if not rows:
        return None
    first, last = max(rows, key=lambda r: r[1] - r[0])
    tabs = 28  # the column of category tabs at the sidebar's right edge
    bright = (part[first : last + 1, : region.width - tabs].min(axis=2) > 0.75).any(axis=0)
    icons = _runs(bright)
    if not icons:
        return None
    a, b = icons[-1]
    return region.x + (a + b) // 2, region.y + (first + last) // 2


def click(x: int, y: int, window=None) -> None:
    """A left click at window coordinates (needs --enable-event-simulate)."""
    window = window or main_window()
    window.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x, y=y)
    window.event_simulate(type="LEFTMOUSE", value="PRESS", x=x, y=y)
    window.event_simulate(type="LEFTMOUSE", value="RELEASE", x=x, y=y)


def key(kind: str, x: int | None = None, y: int | None = None, window=None, **modifiers) -> None:
    """Press and release a key (needs --enable-event-simulate), the mouse at (x, y) when given."""
    window = window or main_window()
    where = {"x": x, "y": y} if x is not None else {}
    if where:
        window.event_simulate(type="MOUSEMOVE", value="NOTHING", **where)
    window.event_simulate(type=kind, value="PRESS", **where, **modifiers)
    window.event_simulate(type=kind, value="RELEASE", **where, **modifiers)


# ----------------------------------------------------------------------------------------
# steps shared by the sessions


def install_extension(session: Session, zip_path: str) -> None:
    """Install the built zip as a user does (Install from Disk) and enable it."""
    t = time.monotonic()
    result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    module = sys.modules.get(MODULE)
    session["install"] = {
        "result": sorted(result),
        "module": module is not None,
        "enabled": MODULE in bpy.context.preferences.addons,
        "seconds": round(time.monotonic() - t, 2),
        "operators": sorted(dir(bpy.ops.imfit)),
    }


def use_external_python(python: str):
    """Preferences > Add-ons > Gabor ImFit: External Python."""
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.python_source = "EXTERNAL"
    prefs.python_path = python
    return prefs


def check_engine(session: Session, window=None, timeout: float = 120.0):
    """Press Check and wait for the probe (it runs polled, as from the preferences)."""
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.probe_result = ""
    t = time.monotonic()
    window = window or main_window()
    with bpy.context.temp_override(window=window):
        result = bpy.ops.imfit.check_engine()
    done = yield from session.wait_until(lambda: bool(prefs.probe_result), timeout)
    info = json.loads(prefs.probe_result) if done else {}
    interpreter = addon_module("jobs.interpreter")
    return {
        "result": sorted(result),
        "done": done,
        "seconds": round(time.monotonic() - t, 2),
        "probe": info,
        "status_line": interpreter.status_line(info) if done else None,
    }


def setup_editors(session: Session):
    """Image Editor on the left, 3D Viewport top right, Shader Editor below it, each with its sidebar: the three
    editors the ImFit panel lives in.  (A new area has its size once the screen has been redrawn.)"""
    window = main_window()

    def split(direction: str, factor: float):
        with bpy.context.temp_override(**override(area_of("VIEW_3D"))):
            result = bpy.ops.screen.area_split(direction=direction, factor=factor)
        if result != {"FINISHED"}:
            raise RuntimeError(f"splitting the 3D Viewport ({direction}) failed: {result}")

    split("VERTICAL", 0.38)
    yield from session.frames(2)
    min((a for a in window.screen.areas if a.type == "VIEW_3D"), key=lambda a: a.x).type = "IMAGE_EDITOR"
    split("HORIZONTAL", 0.42)
    yield from session.frames(2)
    bottom = min((a for a in window.screen.areas if a.type == "VIEW_3D"), key=lambda a: a.y)
    bottom.type = "NODE_EDITOR"
    bottom.ui_type = "ShaderNodeTree"
    for kind in ("IMAGE_EDITOR", "VIEW_3D", "NODE_EDITOR"):
        area_of(kind).spaces.active.show_region_ui = True
    yield from session.frames(2)
    return {a.type: [a.x, a.y, a.width, a.height] for a in window.screen.areas}


def show_imfit_tabs(session: Session):
    """Select the ImFit tab in each editor's sidebar (the sidebar exists once it has been drawn)."""
    yield from session.frames(2)
    tabs = {}
    for kind in ("IMAGE_EDITOR", "VIEW_3D", "NODE_EDITOR"):
        region = region_of(area_of(kind), "UI")
        region.active_panel_category = "ImFit"
        tabs[kind] = region.active_panel_category
    yield from session.frames(3)
    return tabs


def load_image(path: str, editor: bool = True):
    image = bpy.data.images.load(path, check_existing=True)
    if editor:
        area_of("IMAGE_EDITOR").spaces.active.image = image
    return image


def set_fit_settings(**values) -> None:
    """Type the values into the ImFit panel (scene.imfit)."""
    settings = bpy.context.scene.imfit
    for key, value in values.items():
        setattr(settings, key, value)


def invoke_from_panel(idname: str, **props):
    """Press a button of the ImFit panel in the Image Editor's sidebar: the operator is invoked in that region."""
    area = area_of("IMAGE_EDITOR")
    category, name = idname.split(".")
    op = getattr(getattr(bpy.ops, category), name)
    with bpy.context.temp_override(**override(area, "UI")):
        return sorted(op("INVOKE_DEFAULT", **props))


def follow_job(session: Session, timeout: float, shots: dict | None = None, sample_every: float = 0.1):
    """Sample the running job until it ends: progress, preview digests and (at the given fractions) named
    screenshots. Returns a dict of what was seen."""
    shots = dict(shots or {})
    samples, previews = [], []
    preview_name = addon_module("jobs.fit").PREVIEW_IMAGE
    t, cpu = time.monotonic(), cpu_seconds()
    while job_running() and time.monotonic() - t < timeout:
        job = active_job()
        if job is not None:
            samples.append([session.now(), job.iteration, job.total, job.level, round(job.psnr, 3), job.status])
            fraction = job.fraction
            for name, at in list(shots.items()):
                if fraction >= at:
                    session.shot(name)
                    samples[-1].append(name)
                    del shots[name]
        digest = pixels_digest(bpy.data.images.get(preview_name))
        if digest and (not previews or previews[-1][1] != digest):
            previews.append([session.now(), digest])
        yield sample_every
    job = active_job()
    return {
        "samples": samples,
        "previews": previews,
        "ended": not job_running(),
        "seconds": round(time.monotonic() - t, 2),
        "blender_cpu": round(cpu_seconds() - cpu, 2),
        "error": getattr(job, "error", None),
        "result": {
            k: v
            for k, v in (getattr(job, "result", None) or {}).items()
            if isinstance(v, (int, float, str, bool, type(None)))
        },
    }


def scene_result() -> dict:
    s = bpy.context.scene.imfit
    return {
        "image": s.result_image,
        "psnr": round(s.result_psnr, 3),
        "seconds": round(s.result_seconds, 3),
        "wavelets": s.result_wavelets,
        "stopped": s.result_stopped,
        "frames": s.result_frames,
    }


def stored(image_name: str) -> dict:
    """What a fit left in the file: group, text, plane."""
    group = next((g for g in bpy.data.node_groups if g.get("imfit_image") == image_name and "imfit_backend" in g), None)
    text = next((t for t in bpy.data.texts if t.get("imfit_image") == image_name), None)
    plane = bpy.data.objects.get(f"ImFit {image_name}")
    fit = json.loads(text.as_string()) if text is not None else None
    return {
        "group": group.name if group else None,
        "group_count": int(group.get("imfit_count", 0)) if group else 0,
        "text": text.name if text else None,
        "text_wavelets": len(fit["wavelets"]) if fit else 0,
        "text_psnr": (fit.get("metrics") or {}).get("psnr") if fit else None,
        "text_iterations": (fit.get("metrics") or {}).get("iterations") if fit else None,
        "plane": plane.name if plane else None,
    }
