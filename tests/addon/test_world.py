"""Use as World: the HDR lights a diffuse sphere (32x32 Cycles CPU) from where the recovered sun
is, linearly in the strength, and the Z rotation turns it."""
from __future__ import annotations

import pytest

WORLD = '''
import math, mathutils
enable()
sc = bpy.context.scene
s = sc.hdrcnf
s.filepath = PHOTO
assert bpy.ops.hdrcnf.convert('EXEC_DEFAULT') == {'FINISHED'}
hdr = pixels(s.result)[..., :3].astype(np.float64)
H, W = hdr.shape[:2]

# Direction of the recovered sun: the solid-angle weighted mean direction of the brightest 1 %.
# Blender's equirectangular lookup: u = 0.5 - atan2(y, x) / 2pi, v = 0.5 + asin(z) / pi, with v
# counted from the bottom row (hdr here is top row first).
lum = hdr @ np.array([0.2126, 0.7152, 0.0722])
rows, cols = np.nonzero(lum >= np.quantile(lum, 0.99))
u = (cols + 0.5) / W
v = 1.0 - (rows + 0.5) / H
phi, theta = (0.5 - u) * 2 * np.pi, (v - 0.5) * np.pi
w = lum[rows, cols] * np.cos(theta)
d = np.stack([np.cos(theta) * np.cos(phi), np.cos(theta) * np.sin(phi), np.sin(theta)], 1)
sun = mathutils.Vector((w[:, None] * d).sum(0)).normalized()
RESULT["sun"] = list(sun)

previous_world = sc.world.name
for ob in list(bpy.data.objects):
    bpy.data.objects.remove(ob)  # default cube, light and camera: the world is the only light
mesh = bpy.data.meshes.new("sphere")
import bmesh
bm = bmesh.new(); bmesh.ops.create_uvsphere(bm, u_segments=32, v_segments=16, radius=1.0); bm.to_mesh(mesh); bm.free()
for p in mesh.polygons:
    p.use_smooth = True
sphere = bpy.data.objects.new("sphere", mesh)
sc.collection.objects.link(sphere)
mat = bpy.data.materials.new("diffuse")
if bpy.app.version < (5, 0, 0):
    mat.use_nodes = True
nt = mat.node_tree
nt.nodes.clear()
bsdf = nt.nodes.new("ShaderNodeBsdfDiffuse"); bsdf.inputs["Color"].default_value = (0.8, 0.8, 0.8, 1)
out = nt.nodes.new("ShaderNodeOutputMaterial"); nt.links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
mesh.materials.append(mat)
cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
cam.data.type = 'ORTHO'; cam.data.ortho_scale = 2.2
sc.collection.objects.link(cam); sc.camera = cam

r = sc.render
r.engine = 'CYCLES'; r.resolution_x = r.resolution_y = 32; r.resolution_percentage = 100
r.film_transparent = True
c = sc.cycles
c.device = 'CPU'; c.samples = 8; c.use_denoising = False; c.use_adaptive_sampling = False
c.sample_clamp_direct = 0.0; c.sample_clamp_indirect = 0.0; c.seed = 0
s_ = r.image_settings
if hasattr(s_, "media_type"):
    s_.media_type = 'IMAGE'
s_.file_format = 'OPEN_EXR'; s_.color_depth = '32'
if bpy.app.version < (5, 0, 0):
    sc.use_nodes = False  # render the scene itself, not the compositor
else:
    sc.compositing_node_group = None

def shoot(tag, direction):
    cam.location = direction * 10
    cam.rotation_euler = (-direction).to_track_quat('-Z', 'Y').to_euler()
    r.filepath = os.path.join(WORK, tag + ".exr")
    bpy.ops.render.render(write_still=True)
    im = bpy.data.images.load(r.filepath)
    px = pixels(im); bpy.data.images.remove(im)
    sphere_px = px[..., 3] > 0.99
    return float(px[sphere_px][:, :3].mean())

s.world_strength = 1.0
RESULT["op"] = list(bpy.ops.hdrcnf.use_as_world())
world = sc.world
nt = world.node_tree
RESULT["world"] = world.name
RESULT["links"] = sorted(f"{l.from_node.bl_idname}.{l.from_socket.name}->{l.to_node.bl_idname}.{l.to_socket.name}"
                         for l in nt.links)
RESULT["env_image"] = nt.nodes["HDR-CNF Environment"].image == s.result
RESULT["previous_world_kept"] = bpy.data.worlds[previous_world].use_fake_user
RESULT["sun_side"] = shoot("sun", sun)
RESULT["far_side"] = shoot("far", -sun)
s.world_strength = 2.0  # the property updates the Background node live
RESULT["strength_node"] = nt.nodes["HDR-CNF Background"].inputs["Strength"].default_value
RESULT["sun_side_x2"] = shoot("sun2", sun)
s.world_strength = 1.0
s.world_rotation = math.pi  # the sun goes round to the far side
RESULT["rotated_sun_side"] = shoot("rot", sun)
RESULT["op2"] = list(bpy.ops.hdrcnf.use_as_world())  # again: replaces, no pile-up
RESULT["worlds"] = sorted(w.name for w in bpy.data.worlds if w.get("hdrcnf_world"))
done()
'''


@pytest.fixture(scope="module")
def lit(blender, small_pano):
    return blender.run(WORLD, timeout=300, PHOTO=small_pano, WORK=blender.work)


def test_use_as_world_builds_the_node_chain(lit):
    assert lit["op"] == ["FINISHED"], lit["_output"][-2000:]
    assert lit["world"] == "HDR-CNF World"
    assert lit["env_image"]
    assert lit["links"] == sorted([
        "ShaderNodeTexCoord.Generated->ShaderNodeMapping.Vector",
        "ShaderNodeMapping.Vector->ShaderNodeTexEnvironment.Vector",
        "ShaderNodeTexEnvironment.Color->ShaderNodeBackground.Color",
        "ShaderNodeBackground.Background->ShaderNodeOutputWorld.Surface",
    ])
    assert lit["previous_world_kept"]
    assert lit["op2"] == ["FINISHED"] and lit["worlds"] == ["HDR-CNF World"]


def test_diffuse_sphere_is_brighter_on_the_sun_side(lit):
    # measured 0.189 vs 0.109 (x1.7) with the provisional model, whose sun is barely lifted;
    # a model that restores more sun energy only widens the gap
    assert lit["sun_side"] > 1.4 * lit["far_side"], (lit["sun_side"], lit["far_side"], lit["sun"])


def test_lighting_doubles_with_strength(lit):
    assert lit["strength_node"] == pytest.approx(2.0)
    assert lit["sun_side_x2"] / lit["sun_side"] == pytest.approx(2.0, rel=0.05)


def test_z_rotation_turns_the_sun_away(lit):
    assert lit["rotated_sun_side"] < lit["sun_side"] / 1.2, (lit["rotated_sun_side"], lit["sun_side"])
