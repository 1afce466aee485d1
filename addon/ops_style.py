"""Style transfer in Blender: "Stylize" (a new image) and "Fit with Style" (a node group), their settings
(``scene.imfit_style``) and the Style sub-panel of the ImFit tab.

Both run in the fit worker (``imfit_engine.style_fit``) through ``style_job``, so progress, live preview,
Esc / Cancel and background mode behave as for a fit.
"""
import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from . import interpreter, style_job
from .engine import ImfitError
from .ops_fit import _FitOperator, source_image
from .panels import SPACES, _ImfitPanel, _label_lines
from .preferences import get_preferences

STYLE_NOISE = [[9, 0.25, 0.5], [18, 0.2, 0.4], [36, 0.15, 0.3], [0, 0.1, 0.2]]  # the engine's default


class ImfitStyleSettings(bpy.types.PropertyGroup):
    style: PointerProperty(type=bpy.types.Image, name="Style",
                           description="Style image: its colours, strokes and textures are transferred")
    levels: IntProperty(name="Levels", default=1, min=1, max=4,
                        description="Pyramid levels: the result's shortest side is Base x 2^(Levels-1); the "
                                    "losses of every level are summed (large and small style features)")
    base: IntProperty(name="Base", default=256, min=32, soft_max=512, max=2048,
                      description="Shortest side of the smallest pyramid level, pixels")
    steps: IntProperty(name="Steps", default=200, min=1, soft_max=1000,
                       description="Stylize: optimisation steps (LBFGS)")
    fit_steps: IntProperty(name="Style Steps", default=150, min=0, soft_max=1000,
                           description="Fit with Style: steps with the style losses after the ordinary fit")
    style_weight: FloatProperty(name="Style Weight", default=1.0, min=0.0, soft_max=10.0,
                                description="Weight of the style (Gram matrix) loss")
    content_weight: FloatProperty(name="Content Weight", default=1.0, min=0.0, soft_max=10.0,
                                  description="Weight of the content (VGG conv4_2) loss")
    noise: BoolProperty(name="Structured Noise", default=True,
                        description="Start from the content with spots of permuted style colours mixed in "
                                    "(less in the centre and on edges)")
    result_image: StringProperty(name="Stylized Image", description="The last stylized image")

    def style_config(self, steps: int) -> dict:
        return {"levels": self.levels, "base": self.base, "steps": steps, "style_weight": self.style_weight,
                "content_weight": self.content_weight, "noise": STYLE_NOISE if self.noise else []}


def _style_image(context, name: str):
    if name:
        image = bpy.data.images.get(name)
        if image is None:
            raise ImfitError(f"there is no image named {name!r} to take the style from: open it first")
        return image
    image = context.scene.imfit_style.style
    if image is None:
        raise ImfitError("no style image: choose one in the Style panel of the ImFit tab")
    return image


class _StyleOperator(_FitOperator):
    style: StringProperty(name="Style", description="Name of the style image (default: the Style panel's)")
    steps: IntProperty(name="Steps", min=0, default=200, description="Style steps (default: the panel's)")
    job_class = None

    def _make_job(self, context):
        settings, style_settings = context.scene.imfit, context.scene.imfit_style
        image = source_image(context, self.image)
        style = _style_image(context, self.style)
        steps_name = "steps" if self.job_class is style_job.StylizeJob else "fit_steps"
        steps = self.steps if self.properties.is_property_set("steps") else getattr(style_settings, steps_name)
        create_plane = self.create_plane if self.properties.is_property_set("create_plane") else settings.create_plane
        python, env = interpreter.engine_python(get_preferences(context))
        return self.job_class(context.scene, image, None, settings.fit_config(context, **self._settings_from(context)),
                              style_image=style, style_config=style_settings.style_config(steps), python=python,
                              env=env, create_plane=create_plane).start()


class IMFIT_OT_stylize(_StyleOperator, bpy.types.Operator):
    bl_idname = "imfit.stylize"
    bl_label = "Stylize Image"
    bl_description = ("Paint the image in the style of the style image (neural style transfer, in a background "
                      "process); the result is a new image")
    bl_options = {"UNDO"}
    job_class = style_job.StylizeJob


class IMFIT_OT_fit_style(_StyleOperator, bpy.types.Operator):
    bl_idname = "imfit.fit_style"
    bl_label = "Fit Gabor Wavelets with Style"
    bl_description = ("Fit the image with Gabor wavelets, then pull the wavelets toward the style image's "
                      "textures (content + style losses); the result is a shader node group")
    bl_options = {"UNDO"}
    job_class = style_job.StyleFitJob


class _StylePanel(_ImfitPanel):
    bl_label = "Style"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        from . import fit_job

        layout = self.layout
        style = context.scene.imfit_style
        layout.template_ID(style, "style", open="image.open")
        col = layout.column(align=True)
        col.use_property_split = True
        col.use_property_decorate = False
        for name in ("levels", "base", "steps", "fit_steps", "style_weight", "content_weight", "noise"):
            col.prop(style, name)
        short = style.base * 2 ** (style.levels - 1)
        layout.label(text=f"Stylized shortest side: {short} px", icon="INFO")
        job = fit_job.active_job()
        row = layout.row(align=True)
        row.enabled = job is None or not job.running
        row.operator(IMFIT_OT_stylize.bl_idname, text="Stylize", icon="BRUSH_DATA")
        row.operator(IMFIT_OT_fit_style.bl_idname, text="Fit with Style", icon="NODETREE")
        result = bpy.data.images.get(style.result_image) if style.result_image else None
        if result is not None:
            layout.label(text=f"Last: {result.name} ({result.size[0]}x{result.size[1]})", icon="CHECKMARK")
        if style.style is None:
            _label_lines(layout, "Choose a style image (a painting, a texture) to transfer its look", "INFO")


def _panel_classes() -> tuple:
    return tuple(type(f"IMFIT_PT_{short}_style", (_StylePanel, bpy.types.Panel),
                      {"bl_space_type": space, "bl_idname": f"IMFIT_PT_{short}_style",
                       "bl_parent_id": f"IMFIT_PT_{short}_main"})
                 for space, short in SPACES.items())


def draw_menu(self, context):
    self.layout.separator()
    self.layout.operator(IMFIT_OT_stylize.bl_idname, icon="BRUSH_DATA")
    self.layout.operator(IMFIT_OT_fit_style.bl_idname, icon="NODETREE")


classes = (ImfitStyleSettings, IMFIT_OT_stylize, IMFIT_OT_fit_style, *_panel_classes())


def register() -> None:
    from . import panels  # imported here: panels imports this module's operators

    panels.register_feature(classes, "imfit_style", ImfitStyleSettings, draw_menu)


def unregister() -> None:
    from . import panels

    panels.unregister_feature(classes, "imfit_style", draw_menu)
