"""Add-on preferences: where the engine's PyTorch comes from, the default device, the probe's status."""

import json

import bpy
from bpy.props import EnumProperty, StringProperty

from ..engine import ADDON_ID
from ..jobs import interpreter
from ..jobs.interpreter import install_status

DEVICE_ITEMS = (
    ("AUTO", "Auto", "CUDA if PyTorch sees an NVIDIA GPU, else Apple's MPS, else the CPU"),
    ("CPU", "CPU", "Fit on the CPU"),
    ("CUDA", "CUDA", "Fit on an NVIDIA GPU (needs a CUDA build of PyTorch)"),
    ("MPS", "MPS", "Fit on an Apple GPU"),
)
CPU_INDEX_URL = "https://download.pytorch.org/whl/cpu"


class IMFIT_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    python_source: EnumProperty(
        name="Engine Python",
        description="The Python interpreter that runs the fit (it needs PyTorch, numpy and pillow)",
        items=(
            ("BLENDER", "Blender's Python", "Blender's own Python, plus a PyTorch installed for this add-on"),
            ("EXTERNAL", "External Python", "A Python interpreter of your own that has PyTorch"),
        ),
        default="BLENDER",
    )
    python_path: StringProperty(
        name="Python",
        subtype="FILE_PATH",
        description="Path of a Python interpreter with torch, numpy and pillow (e.g. a virtual environment's python)",
    )
    device: EnumProperty(name="Device", description="Default device for fits", items=DEVICE_ITEMS, default="AUTO")
    install_build: EnumProperty(
        name="PyTorch Build",
        description="Which PyTorch build Install PyTorch downloads",
        items=(
            ("CPU", "CPU", "The small CPU-only build from PyTorch's index (about 200 MB; on macOS it uses the GPU)"),
            ("CUDA", "CUDA", "The NVIDIA GPU build from the index below (several GB)"),
            ("PYPI", "PyPI Default", "PyPI's own build: CUDA on Linux (several GB), CPU on Windows, GPU on macOS"),
        ),
        default="CPU",
    )
    cuda_index_url: StringProperty(
        name="CUDA Index",
        default="https://download.pytorch.org/whl/cu128",
        description="Package index of the CUDA build of PyTorch (pick the CUDA version your driver supports)",
    )
    probe_result: StringProperty(options={"HIDDEN"}, description="Cached probe of the engine Python (JSON)")
    probe_for: StringProperty(options={"HIDDEN"}, description="What the cached probe was run for")

    def cached_probe(self) -> dict | None:
        if not self.probe_result or self.probe_for != interpreter.probe_key(self):
            return None
        return json.loads(self.probe_result)

    def store_probe(self, info: dict) -> None:
        self.probe_result = json.dumps(info)
        self.probe_for = interpreter.probe_key(self)

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "python_source")
        if self.python_source == "EXTERNAL":
            layout.prop(self, "python_path")
        layout.prop(self, "device")

        info = self.cached_probe()
        box = layout.box()
        ready = interpreter.engine_ready(info)
        # the status on a row of its own: beside the button it was cut short ("PyTorch 2.13.0+c...nly")
        box.label(text=interpreter.status_line(info), icon="CHECKMARK" if ready else "INFO")
        box.operator("imfit.check_engine", text="Check", icon="FILE_REFRESH")

        if self.python_source == "BLENDER":
            col = box.column()
            if not bpy.app.online_access:
                col.label(
                    text="Allow Online Access (Preferences > System) to install PyTorch here", icon="INTERNET_OFFLINE"
                )
            else:
                col.prop(self, "install_build")
                if self.install_build == "CUDA":
                    col.prop(self, "cuda_index_url")
                col.operator("imfit.install_torch", icon="IMPORT")
            if install_status.text:
                col.label(text=install_status.text, icon="SORTTIME" if install_status.running else "INFO")


class _Defaults:
    """The preferences' defaults, for when the add-on is loaded outside Blender's add-on system."""

    python_source = "BLENDER"
    python_path = ""
    device = "AUTO"


def get_preferences(context=None):
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon is not None and addon.preferences is not None else _Defaults()


classes = (IMFIT_AddonPreferences,)
