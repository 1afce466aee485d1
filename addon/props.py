"""The scene's settings: ``scene.imfit`` (fit settings and the last result), ``scene.imfit_style`` and
``scene.imfit_expand``.  Defaults and limits come from the engine's config modules, so the panel and
the ``imfit`` command start from the same values."""

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from .engine import expand_config, fit_config, sequence, style_config
from .nodes.keyframes import INTERPOLATIONS
from .nodes.paths import BAKE_FOLDER, BAKE_MAX
from .ui.pref import DEVICE_ITEMS, get_preferences

FIT, LIMITS = fit_config.DEFAULTS, fit_config.LIMITS
STYLE = style_config.INTERACTIVE


class ImfitSettings(bpy.types.PropertyGroup):
    image: PointerProperty(
        type=bpy.types.Image, name="Image", description="Image to fit (empty: the image shown in the Image Editor)"
    )
    weight: PointerProperty(
        type=bpy.types.Image,
        name="Weight",
        description="Optional greyscale image: white where the fit matters, black where not",
    )
    num_wavelets: IntProperty(
        name="Wavelets",
        default=FIT.num_wavelets,
        min=LIMITS["num_wavelets"][0],
        soft_max=16384,
        description="Number of Gabor wavelets; more gives more detail and bigger node trees",
    )
    size: IntProperty(
        name="Size",
        default=FIT.size,
        min=LIMITS["size"][0],
        soft_max=1024,
        max=LIMITS["size"][1],
        description="Longest side of the training image in pixels (the aspect ratio is kept)",
    )
    iterations: IntProperty(
        name="Iterations",
        default=FIT.iterations,
        min=LIMITS["iterations"][0],
        soft_max=5000,
        description="Iterations at full size; each coarser level gets more",
    )
    rescales: IntProperty(
        name="Rescales",
        default=FIT.rescales,
        min=LIMITS["rescales"][0],
        max=LIMITS["rescales"][1],
        description="Coarse levels trained first, each half the size of the next",
    )
    l1: FloatProperty(name="L1", default=FIT.l1, min=0.0, soft_max=1.0, description="Weight of an L1 loss term")
    gradient: FloatProperty(
        name="Gradient",
        default=FIT.gradient,
        min=0.0,
        soft_max=1.0,
        description="Weight of an image-gradient loss term",
    )
    sobel: FloatProperty(
        name="Sobel",
        default=FIT.sobel,
        min=0.0,
        soft_max=1.0,
        description="Weight of a Sobel-edge loss term (crisper edges)",
    )
    mutation_scale: FloatProperty(
        name="Mutation",
        default=FIT.mutation_scale,
        min=0.0,
        soft_max=1.0,
        description="Random parameter jitter during training",
    )
    learning_rate: FloatProperty(
        name="Learning Rate", default=FIT.lr, min=1e-5, soft_max=0.1, precision=4, description="Global learning rate"
    )
    gamma: FloatProperty(
        name="Decay",
        default=FIT.gamma,
        min=0.5,
        max=1.0,
        precision=4,
        description="Learning-rate factor applied when the loss stops improving",
    )
    device: EnumProperty(
        name="Device",
        description="Where the fit runs",
        items=(("PREFS", "Preferences", "The device chosen in the add-on preferences"), *DEVICE_ITEMS),
        default="PREFS",
    )
    create_plane: BoolProperty(
        name="Create Plane", default=True, description="Add a plane with a material that renders the fit"
    )
    keyframe_interval: IntProperty(
        name="Keyframe Interval",
        default=sequence.DEFAULT_KEYFRAME_INTERVAL,
        min=1,
        soft_max=100,
        description="Sequences: a fresh fit every this many frames; the frames between "
        "start from the previous frame's fit (less flicker, faster)",
    )
    interpolation: EnumProperty(
        name="Interpolation",
        items=INTERPOLATIONS,
        default="LINEAR",
        description="Sequences: how wavelets move between the keyed frames",
    )

    # the last result, shown in the panel (the stored fit's JSON holds the full record)
    result_image: StringProperty(name="Fitted Image")
    result_psnr: FloatProperty(name="PSNR", unit="NONE", precision=2)
    result_seconds: FloatProperty(name="Seconds", precision=1)
    result_wavelets: IntProperty(name="Wavelets")
    result_stopped: BoolProperty(name="Stopped Early")
    result_frames: IntProperty(name="Frames", description="Frames keyed by the last sequence fit (0: a still)")
    result_flicker: FloatProperty(
        name="Flicker",
        precision=2,
        description="Last sequence fit: mean frame-to-frame change that the source does not have, in 1/255 steps",
    )

    # bakes (ops.bake): the group's field to an image, or an image per frame for an animated group
    bake_size: IntProperty(
        name="Bake Size",
        default=0,
        min=0,
        max=BAKE_MAX,
        soft_max=4096,
        subtype="PIXEL",
        description="Longest side of the baked image in pixels (0: the fitted image's size; at most 8K)",
    )
    bake_frames: StringProperty(
        name="Bake Frames",
        description="Frames of an animated group to bake, e.g. 1-48 (empty: the scene's frame range)",
    )
    bake_folder: StringProperty(
        name="Bake Folder",
        default=BAKE_FOLDER,
        subtype="DIR_PATH",
        description="Where baked images go (// is the .blend's folder; an unsaved file bakes to a temporary folder)",
    )

    def engine_device(self, context) -> str:
        """The FitConfig device name: this scene's choice, else the preferences'."""
        choice = get_preferences(context).device if self.device == "PREFS" else self.device
        return choice.lower()

    def fit_config(self, context, **overrides) -> dict:
        """A ``FitConfig.to_dict()``-shaped dict (the engine fills in the rest)."""
        config = dict(
            num_wavelets=self.num_wavelets,
            size=self.size,
            iterations=self.iterations,
            rescales=self.rescales,
            lr=self.learning_rate,
            gamma=self.gamma,
            l1=self.l1,
            gradient=self.gradient,
            sobel=self.sobel,
            mutation_scale=self.mutation_scale,
            device=self.engine_device(context),
        )
        config.update(overrides)
        return config


class ImfitStyleSettings(bpy.types.PropertyGroup):
    style: PointerProperty(
        type=bpy.types.Image, name="Style", description="Style image: its colours, strokes and textures are transferred"
    )
    levels: IntProperty(
        name="Levels",
        default=STYLE.levels,
        min=1,
        max=4,
        description="Pyramid levels: the result's shortest side is Base x 2^(Levels-1); the "
        "losses of every level are summed (large and small style features)",
    )
    base: IntProperty(
        name="Base",
        default=STYLE.base,
        min=32,
        soft_max=512,
        max=2048,
        description="Shortest side of the smallest pyramid level, pixels",
    )
    steps: IntProperty(
        name="Steps", default=STYLE.steps, min=1, soft_max=1000, description="Stylize: optimisation steps (LBFGS)"
    )
    fit_steps: IntProperty(
        name="Style Steps",
        default=style_config.FIT_STYLE_STEPS,
        min=0,
        soft_max=1000,
        description="Fit with Style: steps with the style losses after the ordinary fit",
    )
    style_weight: FloatProperty(
        name="Style Weight",
        default=STYLE.style_weight,
        min=0.0,
        soft_max=10.0,
        description="Weight of the style (Gram matrix) loss",
    )
    content_weight: FloatProperty(
        name="Content Weight",
        default=STYLE.content_weight,
        min=0.0,
        soft_max=10.0,
        description="Weight of the content (VGG conv4_2) loss",
    )
    noise: BoolProperty(
        name="Structured Noise",
        default=True,
        description="Start from the content with spots of permuted style colours mixed in "
        "(less in the centre and on edges)",
    )
    result_image: StringProperty(name="Stylized Image", description="The last stylized image")

    def style_config(self, steps: int) -> dict:
        return {
            "levels": self.levels,
            "base": self.base,
            "steps": steps,
            "style_weight": self.style_weight,
            "content_weight": self.content_weight,
            "noise": [list(level) for level in STYLE.noise] if self.noise else [],
        }


# (identifier, label, tooltip) of the engine's presets (expand.config.PRESETS)
PRESET_ITEMS = (
    ("cpu-quick", "CPU Quick", "Small networks on 64 px crops: a 128 px texture trains in minutes on a CPU"),
    ("gpu", "GPU (Paper)", "The paper's scale: 256 px crops, 6 residual blocks, 100k iterations: hours, on a GPU"),
)
SCALE_ITEMS = (
    ("2", "2x", "Twice the size"),
    ("4", "4x", "The expansion expanded again"),
    ("8", "8x", "Three expansions"),
)


class ImfitExpandSettings(bpy.types.PropertyGroup):
    preset: EnumProperty(
        name="Preset",
        items=PRESET_ITEMS,
        default=expand_config.ExpandConfig().preset,
        description="Size of the networks and of the training",
    )
    scale: EnumProperty(name="Scale", items=SCALE_ITEMS, default="2", description="How much larger the result is")
    train_iterations: IntProperty(
        name="Training",
        default=0,
        min=0,
        soft_max=100_000,
        description="Training iterations (0: the preset's: 2000 CPU Quick, 100000 GPU)",
    )
    as_wavelets: BoolProperty(
        name="Fit Wavelets",
        default=False,
        description="Also fit Gabor wavelets to the expanded texture (the main panel's "
        "settings) and build its node group",
    )
    match_colors: BoolProperty(
        name="Match Colours",
        default=False,
        description="Match the result's colour histogram to the image's after every 2x "
        "step (no drift in brightness or contrast over 4x and 8x)",
    )
    result_image: StringProperty(name="Expanded Image", description="The last expanded image")
    result_reused: BoolProperty(name="Reused", description="The last expansion reused a cached generator")


classes = (ImfitSettings, ImfitStyleSettings, ImfitExpandSettings)
SCENE_PROPERTIES = {"imfit": ImfitSettings, "imfit_style": ImfitStyleSettings, "imfit_expand": ImfitExpandSettings}


def register_properties() -> None:
    for name, settings in SCENE_PROPERTIES.items():
        setattr(bpy.types.Scene, name, PointerProperty(type=settings))


def unregister_properties() -> None:
    for name in SCENE_PROPERTIES:
        delattr(bpy.types.Scene, name)
