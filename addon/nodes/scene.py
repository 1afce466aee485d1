"""Scene set-up that shows a fit exactly: a camera framing the preview plane, pixel-centre sampling.

Used by `make demo` and the render tests: with these settings pixel (i, j) of a render samples
the plane at UV ((i + .5) / W, 1 - (j + .5) / H), the engine's pixel centres, under the Standard
view transform (what the source image looks like through an Image Texture node).
"""

from __future__ import annotations


def eevee_engine() -> str:
    """EEVEE's render-engine identifier: BLENDER_EEVEE_NEXT on Blender 4.2-4.x, BLENDER_EEVEE from 5.0."""
    import bpy

    items = bpy.types.RenderSettings.bl_rna.properties["engine"].enum_items
    return "BLENDER_EEVEE_NEXT" if "BLENDER_EEVEE_NEXT" in items else "BLENDER_EEVEE"


def setup_render(scene, engine: str, width: int, height: int, samples: int = 1):
    """Exact pixel-centre sampling, Standard view transform, no dithering, no denoising.  ``engine`` is "CYCLES" or
    "BLENDER_EEVEE" (4.2's "BLENDER_EEVEE_NEXT" is used where that is EEVEE's name)."""
    render = scene.render
    render.engine = eevee_engine() if engine.startswith("BLENDER_EEVEE") else engine
    render.resolution_x, render.resolution_y = width, height
    render.resolution_percentage = 100
    render.pixel_aspect_x = render.pixel_aspect_y = 1.0
    render.dither_intensity = 0.0
    render.film_transparent = False
    render.use_compositing = False
    render.use_sequencer = False
    render.image_settings.file_format = "PNG"
    render.image_settings.color_depth = "16"
    render.image_settings.color_mode = "RGB"
    vs = scene.view_settings
    vs.view_transform = "Standard"
    vs.look = "None"
    vs.exposure = 0.0
    vs.gamma = 1.0
    vs.use_curve_mapping = False
    scene.display_settings.display_device = "sRGB"
    if engine == "CYCLES":
        cy = scene.cycles
        cy.device = "CPU"
        cy.samples = samples
        cy.use_adaptive_sampling = False
        cy.use_denoising = False
        cy.pixel_filter_type = "BOX"
        cy.filter_width = 0.01  # the smallest: every sample lands within 0.005 px of the centre
        cy.max_bounces = 0
        cy.seed = 0
        cy.use_animated_seed = False
    else:
        scene.eevee.taa_render_samples = samples
        render.filter_size = 0.0


def add_camera_framing(scene, width: int, height: int, plane_height: float):
    """Orthographic camera looking down -Z at a plane of ``plane_height`` centred on the origin."""
    import bpy

    cam_data = bpy.data.cameras.new("ImFit camera")
    cam_data.type = "ORTHO"
    cam_data.sensor_fit = "VERTICAL"
    cam_data.ortho_scale = plane_height
    cam_data.clip_start, cam_data.clip_end = 0.01, 10.0
    cam = bpy.data.objects.new("ImFit camera", cam_data)
    cam.location = (0.0, 0.0, 2.0)
    scene.collection.objects.link(cam)
    scene.camera = cam
    return cam
