"""The fit settings and the last result, stored on the scene as ``scene.imfit``."""
import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from .preferences import DEVICE_ITEMS, get_preferences
from .sequence_fit import INTERPOLATIONS


class ImfitSettings(bpy.types.PropertyGroup):
    image: PointerProperty(type=bpy.types.Image, name="Image",
                           description="Image to fit (empty: the image shown in the Image Editor)")
    weight: PointerProperty(type=bpy.types.Image, name="Weight",
                            description="Optional greyscale image: white where the fit matters, black where not")
    num_wavelets: IntProperty(name="Wavelets", default=256, min=1, soft_max=4096,
                              description="Number of Gabor wavelets; more gives more detail and bigger node trees")
    size: IntProperty(name="Size", default=256, min=8, soft_max=1024, max=8192,
                      description="Longest side of the training image in pixels (the aspect ratio is kept)")
    iterations: IntProperty(name="Iterations", default=200, min=1, soft_max=5000,
                            description="Iterations at full size; each coarser level gets more")
    rescales: IntProperty(name="Rescales", default=2, min=0, max=6,
                          description="Coarse levels trained first, each half the size of the next")
    l1: FloatProperty(name="L1", default=0.0, min=0.0, soft_max=1.0, description="Weight of an L1 loss term")
    gradient: FloatProperty(name="Gradient", default=0.0, min=0.0, soft_max=1.0,
                            description="Weight of an image-gradient loss term")
    sobel: FloatProperty(name="Sobel", default=0.0, min=0.0, soft_max=1.0,
                         description="Weight of a Sobel-edge loss term (crisper edges)")
    mutation_scale: FloatProperty(name="Mutation", default=0.0, min=0.0, soft_max=1.0,
                                  description="Random parameter jitter during training")
    learning_rate: FloatProperty(name="Learning Rate", default=0.01, min=1e-5, soft_max=0.1, precision=4,
                                 description="Global learning rate")
    gamma: FloatProperty(name="Decay", default=0.997, min=0.5, max=1.0, precision=4,
                         description="Learning-rate factor applied when the loss stops improving")
    device: EnumProperty(name="Device", description="Where the fit runs",
                         items=(("PREFS", "Preferences", "The device chosen in the add-on preferences"),
                                *DEVICE_ITEMS), default="PREFS")
    create_plane: BoolProperty(name="Create Plane", default=True,
                               description="Add a plane with a material that renders the fit")
    keyframe_interval: IntProperty(name="Keyframe Interval", default=10, min=1, soft_max=100,
                                   description="Sequences: a fresh fit every this many frames; the frames between "
                                               "start from the previous frame's fit (less flicker, faster)")
    interpolation: EnumProperty(name="Interpolation", items=INTERPOLATIONS, default="LINEAR",
                                description="Sequences: how wavelets move between the keyed frames")

    # the last result, shown in the panel (the stored fit's JSON holds the full record)
    result_image: StringProperty(name="Fitted Image")
    result_psnr: FloatProperty(name="PSNR", unit="NONE", precision=2)
    result_seconds: FloatProperty(name="Seconds", precision=1)
    result_wavelets: IntProperty(name="Wavelets")
    result_stopped: BoolProperty(name="Stopped Early")
    result_frames: IntProperty(name="Frames", description="Frames keyed by the last sequence fit (0: a still)")
    result_flicker: FloatProperty(name="Flicker", precision=2,
                                  description="Last sequence fit: mean frame-to-frame change that the source does "
                                              "not have, in 1/255 steps")

    def engine_device(self, context) -> str:
        """The FitConfig device name: this scene's choice, else the preferences'."""
        choice = get_preferences(context).device if self.device == "PREFS" else self.device
        return choice.lower()

    def fit_config(self, context, **overrides) -> dict:
        """A ``FitConfig.to_dict()``-shaped dict (the engine fills in the rest)."""
        config = dict(num_wavelets=self.num_wavelets, size=self.size, iterations=self.iterations,
                      rescales=self.rescales, lr=self.learning_rate, gamma=self.gamma, l1=self.l1,
                      gradient=self.gradient, sobel=self.sobel, mutation_scale=self.mutation_scale,
                      device=self.engine_device(context))
        config.update(overrides)
        return config


classes = (ImfitSettings,)


def register_properties() -> None:
    bpy.types.Scene.imfit = PointerProperty(type=ImfitSettings)


def unregister_properties() -> None:
    del bpy.types.Scene.imfit
