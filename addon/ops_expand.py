"""Expand Texture: adversarial texture expansion of an image in Blender, its settings (``scene.imfit_expand``)
and the Expand sub-panel of the ImFit tab.

It runs in the fit worker (``imfit_engine.expand_job``) through ``expand_job.ExpandJob``, so progress, live
preview, Esc / Cancel and background mode behave as for a fit.  The first expansion of an image trains its
generator (minutes with the CPU preset); later ones reuse it from the cache (``expand_job.cache_path``).
"""
import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from . import expand_job, interpreter
from .ops_fit import _FitOperator, source_image
from .panels import SPACES, _ImfitPanel, _label_lines
from .preferences import get_preferences

PRESET_ITEMS = (
    ("cpu-quick", "CPU Quick", "Small networks on 64 px crops: a 128 px texture trains in minutes on a CPU"),
    ("gpu", "GPU (Paper)", "The paper's scale: 256 px crops, 6 residual blocks, 100k iterations: hours, on a GPU"),
)
SCALE_ITEMS = (("2", "2x", "Twice the size"), ("4", "4x", "The expansion expanded again"),
               ("8", "8x", "Three expansions"))


class ImfitExpandSettings(bpy.types.PropertyGroup):
    preset: EnumProperty(name="Preset", items=PRESET_ITEMS, default="cpu-quick",
                         description="Size of the networks and of the training")
    scale: EnumProperty(name="Scale", items=SCALE_ITEMS, default="2", description="How much larger the result is")
    train_iterations: IntProperty(name="Training", default=0, min=0, soft_max=100_000,
                                  description="Training iterations (0: the preset's: 2000 CPU Quick, 100000 GPU)")
    as_wavelets: BoolProperty(name="Fit Wavelets", default=False,
                              description="Also fit Gabor wavelets to the expanded texture (the main panel's "
                                          "settings) and build its node group")
    match_colors: BoolProperty(name="Match Colours", default=False,
                               description="Match the result's colour histogram to the image's after every 2x "
                                           "step (no drift in brightness or contrast over 4x and 8x)")
    result_image: StringProperty(name="Expanded Image", description="The last expanded image")
    result_reused: BoolProperty(name="Reused", description="The last expansion reused a cached generator")


class IMFIT_OT_expand_texture(_FitOperator, bpy.types.Operator):
    bl_idname = "imfit.expand_texture"
    bl_label = "Expand Texture"
    bl_description = ("Expand the image to 2x/4x/8x its size with a generator trained on it (adversarial "
                      "expansion, in a background process; reuses the generator cached for the image)")
    bl_options = {"UNDO"}

    preset: EnumProperty(name="Preset", items=PRESET_ITEMS, default="cpu-quick",
                         description="Networks and training size (default: the Expand panel's)")
    scale: EnumProperty(name="Scale", items=SCALE_ITEMS, default="2", description="Default: the Expand panel's")
    train_iterations: IntProperty(name="Training", default=0, min=0,
                                  description="Training iterations (0: the preset's; default: the Expand panel's)")
    as_wavelets: BoolProperty(name="Fit Wavelets", default=False,
                              description="Also fit wavelets to the expansion (default: the Expand panel's)")
    match_colors: BoolProperty(name="Match Colours", default=False,
                               description="Match the colour histogram to the image's (default: the Expand panel's)")

    def _value(self, context, name: str):
        return getattr(self if self.properties.is_property_set(name) else context.scene.imfit_expand, name)

    def _make_job(self, context):
        settings = context.scene.imfit
        image = source_image(context, self.image)
        preset, scale = self._value(context, "preset"), int(self._value(context, "scale"))
        overrides = {"device": settings.engine_device(context)}
        if self._value(context, "train_iterations"):
            overrides["iterations"] = self._value(context, "train_iterations")
        config = settings.fit_config(context, **self._settings_from(context)) \
            if self._value(context, "as_wavelets") else None
        create_plane = self.create_plane if self.properties.is_property_set("create_plane") else settings.create_plane
        python, env = interpreter.engine_python(get_preferences(context))
        return expand_job.ExpandJob(context.scene, image, config, preset=preset, scale=scale, overrides=overrides,
                                    checkpoint=expand_job.cache_path(image.name, preset),
                                    match=self._value(context, "match_colors"), python=python, env=env,
                                    create_plane=create_plane).start()


class _ExpandPanel(_ImfitPanel):
    bl_label = "Expand Texture"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        from . import fit_job

        layout = self.layout
        expand = context.scene.imfit_expand
        col = layout.column(align=True)
        col.use_property_split = True
        col.use_property_decorate = False
        for name in ("preset", "scale", "train_iterations", "match_colors", "as_wavelets"):
            col.prop(expand, name)
        job = fit_job.active_job()
        row = layout.row(align=True)
        row.scale_y = 1.2
        row.enabled = job is None or not job.running
        row.operator(IMFIT_OT_expand_texture.bl_idname, text="Expand Texture", icon="FULLSCREEN_ENTER")
        result = bpy.data.images.get(expand.result_image) if expand.result_image else None
        if result is not None:
            how = ", cached generator" if expand.result_reused else ""
            layout.label(text=f"Last: {result.name} ({result.size[0]}x{result.size[1]}{how})", icon="CHECKMARK")
        if expand.preset == "gpu":
            _label_lines(layout, "The GPU preset trains for hours; choose CUDA in the device setting", "INFO")


def _panel_classes() -> tuple:
    return tuple(type(f"IMFIT_PT_{short}_expand", (_ExpandPanel, bpy.types.Panel),
                      {"bl_space_type": space, "bl_idname": f"IMFIT_PT_{short}_expand",
                       "bl_parent_id": f"IMFIT_PT_{short}_main"})
                 for space, short in SPACES.items())


def draw_menu(self, context):
    self.layout.operator(IMFIT_OT_expand_texture.bl_idname, icon="FULLSCREEN_ENTER")


classes = (ImfitExpandSettings, IMFIT_OT_expand_texture, *_panel_classes())


def register() -> None:
    from . import panels  # imported here: panels imports this module's operators

    panels.register_feature(classes, "imfit_expand", ImfitExpandSettings, draw_menu)


def unregister() -> None:
    from . import panels

    panels.unregister_feature(classes, "imfit_expand", draw_menu)
