"""`make demo`: the main job, headless, on a bundled photo.

Blender (the bpy module) fits the photo through the extension's operator, which builds the
`ImFit astronaut.png` node group and a preview plane; then a camera frames the plane, Cycles
renders it (emission, Standard view transform) at the photo's full size, `out/demo.blend` and
`out/demo.png` are saved, and the PSNR of that render against the photo is printed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import dev_extension

REPO = dev_extension.REPO


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=str(REPO / "tests" / "data" / "astronaut.png"))
    parser.add_argument("--num-wavelets", type=int, default=256)
    parser.add_argument("--size", type=int, default=128, help="training size (the render is at the photo's size)")
    parser.add_argument("--iterations", type=int, help="full-size iterations (default: the panel's)")
    parser.add_argument("--out", default=str(REPO / "out"))
    a = parser.parse_args(argv)

    dev_extension.sandbox_user_resources()
    dev_extension.bpy_python_path()  # Cycles' OSL compiler, which the node group's OSL path needs
    import bpy
    import numpy as np

    bpy.ops.wm.read_factory_settings(use_empty=True)
    dev_extension.enable(tempfile.mkdtemp(prefix="imfit-demo-ext-"))
    from bl_ext.imfit_dev.gabor_imfit.addon.nodes import plane
    from bl_ext.imfit_dev.gabor_imfit.addon.nodes import scene as preview_scene

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    image = bpy.data.images.load(a.image)
    width, height = image.size
    print(
        f"fitting {Path(a.image).name} ({width}x{height}) with {a.num_wavelets} wavelets at {a.size} px ...", flush=True
    )
    t0 = time.perf_counter()
    iterations = {} if a.iterations is None else {"iterations": a.iterations}
    result = bpy.ops.imfit.fit(
        image=image.name, num_wavelets=a.num_wavelets, size=a.size, create_plane=True, **iterations
    )
    if result != {"FINISHED"}:
        print("demo: the fit did not finish", file=sys.stderr)
        return 1
    fit_seconds = time.perf_counter() - t0
    scene = bpy.context.scene
    engine_psnr = scene.imfit.result_psnr

    preview_scene.add_camera_framing(scene, width, height, plane.PLANE_HEIGHT)
    preview_scene.setup_render(scene, "CYCLES", width, height, samples=1)
    scene.render.image_settings.color_depth = "8"
    scene.render.filepath = str(out / "demo.png")
    t0 = time.perf_counter()
    bpy.ops.render.render(write_still=True)
    render_seconds = time.perf_counter() - t0
    bpy.ops.wm.save_as_mainfile(filepath=str(out / "demo.blend"))

    from PIL import Image

    from imfit_engine.core.metrics import psnr

    rendered = np.asarray(Image.open(out / "demo.png").convert("RGB"), np.float32) / 255
    photo = np.asarray(Image.open(a.image).convert("RGB"), np.float32) / 255
    print(f"fit: {fit_seconds:.1f} s, PSNR {engine_psnr:.2f} dB at {a.size} px (engine)")
    print(f"Cycles render of the node group at {width}x{height}: {render_seconds:.1f} s")
    print(f"saved {out / 'demo.blend'} and {out / 'demo.png'}")
    print(f"PSNR of the Cycles render against the photo: {psnr(rendered, photo):.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
