"""Rendered HDR training scenes: rooms lit by the lamps in view, and yards under a physical sky.

Why: the held-out highlight error is carried by clipped lamps (a studio lamp 12 stops above the
clip point is lifted by about 6), and real HDR captures with measured lamps and suns are scarce:
the project's training set holds 48 images. A path tracer gives what a capture would: every lamp
is in the panorama, and how bright it is next to the walls it lights follows from its size and
power, by the physics of light transport, not by a rule we made up (the synthetic blobs of
``training.lights`` had no such relation and did not teach it). Each scene is a 2:1
equirectangular panorama, so the training loader takes crops and perspective views from it like
from any captured panorama.

Rooms are boxes with textured walls, floors and furniture, lit by 1-4 emitters (bare bulbs,
globes, ceiling panels, tubes, bright windows) at 2^3 to 2^13 of a white emitter's radiance, in
blackbody colours. Yards are textured ground with buildings under Blender's multiple-scattering
sky with its sun disc. Everything comes from ``numpy.random.default_rng([seed, index])``, so a
scene can be re-rendered alone and an interrupted run resumes where it stopped.

    python -m training.render_data --out .cache/render-hdr --count 40

Needs ``bpy`` (Blender as a Python module; ``make test`` installs it). The scenes are generated
here, so they carry no third-party licence.

Measured (MODEL_CARD, runs R1 and R2): 24 such scenes as a third of the training samples, with or
without the lens, neither taught the held-out lamps nor harmed the rest; the flow's panorama light
improved a little. It stays as a tool for larger runs and richer scenes.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import InputError
from engine.io import read_hdr, write_exr


@dataclass
class RenderConfig:
    count: int = 40
    width: int = 640              # panoramas are width x width/2
    samples: int = 16             # path-traced samples per pixel, then denoised
    seed: int = 0
    threads: int = 0              # render threads; 0 = every core
    p_outdoor: float = 0.25       # share of yards under a sky; the rest are lamp-lit rooms
    glare: bool = True            # pass the render through a lens (apply_lens_glare)


def _bpy():
    try:
        import bpy
    except ImportError as exc:
        raise InputError(f"rendering training scenes needs bpy (pip install bpy==5.0.1): {exc}") from None
    return bpy


# ---------------------------------------------------------------------------------------------
# materials

def _colour(rng: np.random.Generator, value: tuple[float, float] = (0.05, 0.8)) -> tuple[float, float, float, float]:
    """A random albedo: mostly muted, as real walls and furniture are."""
    import colorsys
    h, s, v = rng.random(), rng.uniform(0.0, 0.6) ** 1.5, rng.uniform(*value)
    return (*colorsys.hsv_to_rgb(h, s, v), 1.0)


def _surface(bpy, name: str, rng: np.random.Generator):
    """A Principled BSDF whose base colour is plain or one of Blender's procedural textures, so
    the crops have texture for the flow to model, with a share of glossy and metallic surfaces
    that mirror the lamps as real specular highlights do."""
    mat = bpy.data.materials.new(name)
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = nodes["Principled BSDF"]
    bsdf.inputs["Roughness"].default_value = float(rng.uniform(0.05, 1.0) ** 0.7)
    if rng.random() < 0.15:
        bsdf.inputs["Metallic"].default_value = 1.0
    kind = rng.choice(["plain", "noise", "checker", "brick", "wave", "voronoi"])
    if kind == "plain":
        bsdf.inputs["Base Color"].default_value = _colour(rng)
        return mat
    if kind == "noise" or kind == "voronoi":
        tex = nodes.new("ShaderNodeTexNoise" if kind == "noise" else "ShaderNodeTexVoronoi")
        tex.inputs["Scale"].default_value = float(rng.uniform(1, 40))
        ramp = nodes.new("ShaderNodeMix")
        ramp.data_type = "RGBA"
        ramp.inputs["A"].default_value = _colour(rng)
        ramp.inputs["B"].default_value = _colour(rng)
        links.new(tex.outputs[0] if kind == "noise" else tex.outputs["Distance"], ramp.inputs["Factor"])
        links.new(ramp.outputs["Result"], bsdf.inputs["Base Color"])
        return mat
    tex = nodes.new({"checker": "ShaderNodeTexChecker", "brick": "ShaderNodeTexBrick",
                     "wave": "ShaderNodeTexWave"}[kind])
    tex.inputs["Scale"].default_value = float(rng.uniform(1, 12))
    if kind != "wave":
        tex.inputs["Color1"].default_value = _colour(rng)
        tex.inputs["Color2"].default_value = _colour(rng)
    links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


def _emitter(bpy, name: str, strength: float, kelvin: float):
    mat = bpy.data.materials.new(name)
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    nodes.clear()
    emit, out, body = nodes.new("ShaderNodeEmission"), nodes.new("ShaderNodeOutputMaterial"), nodes.new("ShaderNodeBlackbody")
    body.inputs["Temperature"].default_value = kelvin
    emit.inputs["Strength"].default_value = strength
    links.new(body.outputs["Color"], emit.inputs["Color"])
    links.new(emit.outputs["Emission"], out.inputs["Surface"])
    return mat


def _give(obj, mat) -> None:
    obj.data.materials.clear()
    obj.data.materials.append(mat)


# ---------------------------------------------------------------------------------------------
# scene parts

def _furniture(bpy, rng: np.random.Generator, half_x: float, half_y: float, keep_clear: tuple[float, float],
               count: int, size: tuple[float, float]) -> None:
    """Primitives standing on the floor, none within 1 m of the camera."""
    ops = bpy.ops.mesh
    makers = [ops.primitive_cube_add, ops.primitive_uv_sphere_add, ops.primitive_cylinder_add,
              ops.primitive_cone_add, ops.primitive_torus_add, ops.primitive_monkey_add]
    for i in range(count):
        for _ in range(20):
            x, y = rng.uniform(-half_x, half_x), rng.uniform(-half_y, half_y)
            if math.hypot(x - keep_clear[0], y - keep_clear[1]) > 1.0:
                break
        s = float(rng.uniform(*size))
        makers[int(rng.integers(len(makers)))](location=(x, y, s * 0.5))
        obj = bpy.context.object
        sx, sy, sz = rng.uniform(0.3, 1.0, 3) * s
        obj.scale = (sx, sy, sz)
        obj.rotation_euler = (0.0, 0.0, float(rng.uniform(0, 2 * math.pi)))
        _give(obj, _surface(bpy, f"object{i}", rng))


def _lamps(bpy, rng: np.random.Generator, w: float, d: float, h: float) -> None:
    """1-4 visible emitters. Radiance is drawn per lamp; how bright the room gets follows from it."""
    kinds = ["bulb", "globe", "panel", "tube", "window"]
    for i in range(int(rng.integers(1, 5))):
        kind = kinds[int(rng.choice(len(kinds), p=[0.3, 0.2, 0.2, 0.15, 0.15]))]
        kelvin = float(rng.uniform(2200, 6500))
        strength = float(2.0 ** rng.uniform(3, 13))
        x, y = rng.uniform(-0.4, 0.4) * w, rng.uniform(-0.4, 0.4) * d
        if kind == "bulb":
            bpy.ops.mesh.primitive_uv_sphere_add(radius=float(rng.uniform(0.02, 0.08)),
                                                 location=(x, y, float(rng.uniform(0.5, 0.95)) * h))
        elif kind == "globe":
            bpy.ops.mesh.primitive_uv_sphere_add(radius=float(rng.uniform(0.12, 0.3)),
                                                 location=(x, y, float(rng.uniform(0.3, 0.85)) * h))
            strength /= 8
        elif kind == "panel":
            bpy.ops.mesh.primitive_plane_add(size=1.0, location=(x, y, h - 0.01))
            bpy.context.object.scale = (float(rng.uniform(0.2, 1.5)), float(rng.uniform(0.2, 1.5)), 1.0)
            strength /= 16
        elif kind == "tube":
            bpy.ops.mesh.primitive_cylinder_add(radius=0.02, depth=float(rng.uniform(0.5, 1.5)),
                                                location=(x, y, h - 0.15), rotation=(0.0, math.pi / 2, 0.0))
            bpy.context.object.rotation_euler[2] = float(rng.uniform(0, math.pi))
        else:  # a window: a bright rectangle on one wall, as daylight seen from inside
            side = int(rng.integers(4))
            wx, wz = float(rng.uniform(0.6, 2.0)), float(rng.uniform(0.6, 1.6))
            along = float(rng.uniform(-0.3, 0.3))
            if side < 2:
                loc, rot = (along * w, (d / 2 - 0.01) * (1 if side else -1), h * 0.55), (math.pi / 2, 0.0, 0.0)
            else:
                loc, rot = ((w / 2 - 0.01) * (1 if side == 2 else -1), along * d, h * 0.55), (math.pi / 2, 0.0, math.pi / 2)
            bpy.ops.mesh.primitive_plane_add(size=1.0, location=loc, rotation=rot)
            bpy.context.object.scale = (wx, wz, 1.0)
            kelvin, strength = float(rng.uniform(5500, 12000)), strength / 16
        _give(bpy.context.object, _emitter(bpy, f"lamp{i}", strength, kelvin))


def _room(bpy, rng: np.random.Generator) -> tuple[float, float, float]:
    """A closed box (so only its own lamps light it) and its furniture; returns the camera's place."""
    w, d, h = float(rng.uniform(3, 10)), float(rng.uniform(3, 10)), float(rng.uniform(2.4, 4.0))
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(0.0, 0.0, h / 2))
    walls = bpy.context.object
    walls.scale = (w, d, h)
    _give(walls, _surface(bpy, "walls", rng))
    bpy.ops.mesh.primitive_plane_add(size=1.0, location=(0.0, 0.0, 0.002))
    bpy.context.object.scale = (w, d, 1.0)
    _give(bpy.context.object, _surface(bpy, "floor", rng))
    cam = (float(rng.uniform(-0.3, 0.3)) * w, float(rng.uniform(-0.3, 0.3)) * d, float(rng.uniform(1.0, min(1.9, h - 0.4))))
    _furniture(bpy, rng, 0.45 * w, 0.45 * d, cam[:2], int(rng.integers(3, 10)), (0.3, 1.4))
    _lamps(bpy, rng, w, d, h)
    return cam


def _yard(bpy, scene, rng: np.random.Generator) -> tuple[float, float, float]:
    """Textured ground, buildings and objects under a physical sky with its sun."""
    bpy.ops.mesh.primitive_plane_add(size=400.0)
    _give(bpy.context.object, _surface(bpy, "ground", rng))
    _furniture(bpy, rng, 12.0, 12.0, (0.0, 0.0), int(rng.integers(3, 12)), (0.5, 3.0))
    for i in range(int(rng.integers(0, 8))):  # buildings farther out
        r, a = float(rng.uniform(15, 60)), float(rng.uniform(0, 2 * math.pi))
        hgt = float(rng.uniform(4, 30))
        bpy.ops.mesh.primitive_cube_add(size=1.0, location=(r * math.cos(a), r * math.sin(a), hgt / 2))
        bpy.context.object.scale = (float(rng.uniform(5, 20)), float(rng.uniform(5, 20)), hgt)
        bpy.context.object.rotation_euler[2] = float(rng.uniform(0, math.pi))
        _give(bpy.context.object, _surface(bpy, f"building{i}", rng))
    world = bpy.data.worlds.new("sky")
    nodes, links = world.node_tree.nodes, world.node_tree.links
    nodes.clear()
    sky, bg, out = nodes.new("ShaderNodeTexSky"), nodes.new("ShaderNodeBackground"), nodes.new("ShaderNodeOutputWorld")
    sky.sky_type = "MULTIPLE_SCATTERING"
    sky.sun_elevation = math.radians(float(rng.uniform(3, 70)))
    sky.sun_rotation = float(rng.uniform(0, 2 * math.pi))
    sky.air_density = float(rng.uniform(0.5, 3.0))
    sky.aerosol_density = float(rng.uniform(0.5, 3.0))
    # A captured sun is a few pixels of glare, not a 0.5-degree disc that a 640-px panorama
    # (0.56 degrees a pixel) would sample a few times at most: draw it 0.5-3 degrees wide.
    sky.sun_size = math.radians(float(rng.uniform(0.5, 3.0)))
    links.new(sky.outputs["Color"], bg.inputs["Color"])
    links.new(bg.outputs["Background"], out.inputs["Surface"])
    scene.world = world
    return (float(rng.uniform(-2, 2)), float(rng.uniform(-2, 2)), float(rng.uniform(1.2, 1.8)))


# ---------------------------------------------------------------------------------------------
# the lens

def glare_kernel(energy: float, exponent: float, radius: int) -> np.ndarray:
    """A lens's veiling-glare point spread: the core keeps 1 - ``energy`` of each pixel's light and
    the rest falls off as 1 / (1 + r^exponent) out to ``radius`` pixels. Sums to 1."""
    r = np.hypot(*np.meshgrid(np.arange(-radius, radius + 1), np.arange(-radius, radius + 1)))
    tail = np.where((r > 0) & (r <= radius), 1.0 / (1.0 + r ** exponent), 0.0)
    kernel = energy * tail / tail.sum()
    kernel[radius, radius] = 1.0 - energy
    return kernel


def apply_lens_glare(img: np.ndarray, energy: float, exponent: float, radius: int = 48) -> np.ndarray:
    """Spread a share of every pixel's light around it, as a camera lens does.

    Why: a real HDR capture is measured through a lens, so a lamp 12 stops above the walls comes
    with a glow whose brightness follows its own, and that glow is what a local view can read a
    clipped lamp's brightness from. A path tracer has no lens: its lamps end in a sharp edge, and
    a model trained on them could learn that sharp clipped shapes may be very bright, which is
    wrong for windows and white walls in photographs (measured: the lens made no difference to
    the held-out scores, run R2). Convolved in the Fourier domain, wrapping around horizontally (a
    panorama does) and padded at the poles; the light is conserved."""
    kernel = glare_kernel(energy, exponent, radius)
    h, w = img.shape[:2]
    padded = np.pad(img, ((radius, radius), (0, 0), (0, 0)), mode="edge").astype(np.float64)
    kpad = np.zeros(padded.shape[:2])
    k = kernel.shape[0]
    kpad[:k, :k] = kernel
    kpad = np.roll(kpad, (-radius, -radius), axis=(0, 1))
    spectrum = np.fft.rfft2(kpad)[..., None]
    out = np.fft.irfft2(np.fft.rfft2(padded, axes=(0, 1)) * spectrum, s=padded.shape[:2], axes=(0, 1))
    return np.maximum(out[radius:radius + h], 0.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------

def render_scene(out: Path, index: int, cfg: RenderConfig) -> Path:
    """Build scene ``index`` from scratch and write it as a 32-bit EXR, atomically."""
    bpy = _bpy()
    rng = np.random.default_rng([cfg.seed, index])
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    outdoor = rng.random() < cfg.p_outdoor
    cam_at = _yard(bpy, scene, rng) if outdoor else _room(bpy, rng)
    cam = bpy.data.cameras.new("camera")
    cam.type, cam.panorama_type = "PANO", "EQUIRECTANGULAR"
    obj = bpy.data.objects.new("camera", cam)
    scene.collection.objects.link(obj)
    scene.camera = obj
    obj.location = cam_at
    obj.rotation_euler = (math.pi / 2, 0.0, float(rng.uniform(0, 2 * math.pi)))
    render = scene.render
    render.engine = "CYCLES"
    scene.cycles.device, scene.cycles.samples, scene.cycles.use_denoising = "CPU", cfg.samples, True
    scene.cycles.seed = index
    if cfg.threads:
        render.threads_mode, render.threads = "FIXED", cfg.threads
    else:
        render.threads_mode = "AUTO"
    render.resolution_x, render.resolution_y, render.resolution_percentage = cfg.width, cfg.width // 2, 100
    scene.view_settings.view_transform = "Standard"
    settings = render.image_settings
    settings.file_format, settings.color_depth, settings.exr_codec = "OPEN_EXR", "32", "ZIP"
    settings.color_management = "FOLLOW_SCENE"
    path = out / f"render_{'yard' if outdoor else 'room'}_{cfg.seed}_{index:04d}.exr"
    tmp = out / f".partial_{index:04d}.exr"
    render.filepath = str(tmp)
    bpy.ops.render.render(write_still=True)
    if cfg.glare:
        img = apply_lens_glare(read_hdr(tmp), *_lens(rng))
        write_exr(tmp, img, half=False)
    os.replace(tmp, path)
    return path


def _lens(rng: np.random.Generator) -> tuple[float, float]:
    """Glare energy 0.5-5 % and a fall-off between r^-2 and r^-3, the range of camera lenses."""
    return float(2.0 ** rng.uniform(np.log2(0.005), np.log2(0.05))), float(rng.uniform(2.0, 3.0))


def existing(out: Path, index: int, cfg: RenderConfig) -> bool:
    """Whether scene ``index`` of this seed is already rendered (as a room or a yard)."""
    return any(out.glob(f"render_*_{cfg.seed}_{index:04d}.exr"))


def render_all(out: Path, cfg: RenderConfig) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    done = []
    for i in range(cfg.count):
        if existing(out, i, cfg):
            continue
        t = time.time()
        done.append(render_scene(out, i, cfg))
        print(f"{done[-1].name}: {time.time() - t:.1f} s", flush=True)
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="folder for the EXR panoramas (created)")
    ap.add_argument("--count", type=int, default=RenderConfig.count)
    ap.add_argument("--width", type=int, default=RenderConfig.width)
    ap.add_argument("--samples", type=int, default=RenderConfig.samples)
    ap.add_argument("--seed", type=int, default=RenderConfig.seed)
    ap.add_argument("--threads", type=int, default=RenderConfig.threads, help="render threads (default: every core)")
    ap.add_argument("--p-outdoor", type=float, default=RenderConfig.p_outdoor)
    ap.add_argument("--no-glare", action="store_true", help="keep the path tracer's output as it is (no lens)")
    a = ap.parse_args(argv)
    if a.width < 16 or a.width % 2 or a.count < 1 or a.samples < 1 or a.threads < 0 or not 0 <= a.p_outdoor <= 1:
        print("error: need --width an even number >= 16, --count >= 1, --samples >= 1, --threads >= 0, "
              "0 <= --p-outdoor <= 1", file=sys.stderr)
        return 2
    if a.out.exists() and not a.out.is_dir():
        print(f"error: {a.out} is a file; --out needs a folder", file=sys.stderr)
        return 2
    cfg = RenderConfig(count=a.count, width=a.width, samples=a.samples, seed=a.seed, threads=a.threads,
                       p_outdoor=a.p_outdoor, glare=not a.no_glare)
    try:
        render_all(a.out, cfg)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
