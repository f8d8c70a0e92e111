# SPDX-License-Identifier: GPL-3.0-or-later
"""The HDR-CNF compositor node, the result images and the HDRI world (main thread, bpy).

Python cannot define a pixel-processing compositor node (a Python node in the compositor's data
path crashes Blender 5.0), and a `CompositorNodeCustomGroup` subclass makes a .blend that crashes
on render wherever the add-on is not enabled (e.g. a render farm). So the HDR-CNF node is a plain
compositor group node: its node group (tagged with the ID property `hdrcnf_group`) holds an Image
node with the computed float HDR, followed by an Exposure node driven by the group's Exposure
input. The file renders anywhere, with or without the add-on.

Blender 5.0 changed the compositor API; the 4.2 LTS code path is chosen by version:
- 5.0: `scene.compositing_node_group` (None until created), output = Group Output node plus an
  interface output socket; `World.use_nodes`/`Scene.use_nodes` are deprecated and not needed.
- 4.2: `scene.use_nodes = True` creates `scene.node_tree`; output = Composite node.

Result images: one float image per photo (ID property `hdrcnf_source` = the photo's key), named
"HDR-CNF <stem>", packed into the .blend. Re-converting builds the new image first and then
`user_remap`s the old one onto it (nodes, worlds and properties follow) and takes over its name:
re-packing an already packed float image after `foreach_set` does not update the packed data in
5.0.1 (measured), so an image is never re-filled in place.
"""
from __future__ import annotations

import os
import tempfile

import bpy
import numpy as np

LEGACY = bpy.app.version < (5, 0, 0)  # Blender 4.2 LTS .. 4.5 compositor API

LABEL = "HDR-CNF"
GROUP_TAG = "hdrcnf_group"
IMAGE_TAG = "hdrcnf_source"
WORLD_TAG = "hdrcnf_world"
IMAGE_NODE = "HDR-CNF Image"
EXPOSURE_NODE = "HDR-CNF Exposure"
WORLD_NAME = "HDR-CNF World"
LINEAR = "Linear Rec.709"
_MAX_NAME = 60
_UMASK = os.umask(0o022)
os.umask(_UMASK)
_NEW_FILE_MODE = 0o666 & ~_UMASK


# -------------------------------------------------------------------------------- images


def result_name(stem: str) -> str:
    return f"{LABEL} {stem}"[:_MAX_NAME]


def is_result_image(image) -> bool:
    return image is not None and image.get(IMAGE_TAG) is not None


def find_result_image(key: str):
    for image in bpy.data.images:
        if image.get(IMAGE_TAG) == key:
            return image
    return None


def new_float_image(name: str, hdr: np.ndarray):
    """A packed float RGBA image holding linear `hdr` (H, W, 3), alpha 1."""
    h, w = hdr.shape[:2]
    image = bpy.data.images.new(name, w, h, alpha=True, float_buffer=True)
    try:
        # The colour space must be set BEFORE the pixels: changing it on a generated image
        # regenerates (wipes) the buffer.
        try:
            image.colorspace_settings.name = LINEAR
        except TypeError:  # a custom OCIO config without that name
            image.colorspace_settings.name = "scene_linear"
        rgba = np.empty((h, w, 4), dtype=np.float32)
        rgba[..., :3] = hdr
        rgba[..., 3] = 1.0
        image.pixels.foreach_set(np.ascontiguousarray(rgba[::-1]).ravel())  # Blender rows go up
        image.pack()  # otherwise a generated image comes back blank after save/reload
    except BaseException:
        bpy.data.images.remove(image)
        raise
    return image


def image_pixels(image) -> np.ndarray:
    """(H, W, channels) float32, top row first (Blender stores bottom-up). Float images give
    scene-linear values, 8-bit ones the stored (display-encoded) values / 255."""
    w, h = image.size
    c = image.channels
    buf = np.empty(w * h * c, dtype=np.float32)
    image.pixels.foreach_get(buf)
    return np.ascontiguousarray(buf.reshape(h, w, c)[::-1])


# ---------------------------------------------------------------------------- compositor


def compositor_tree(scene, create: bool = False, undo: list | None = None):
    """The scene's compositor node tree (None when there is none and `create` is False)."""
    return _compositor_tree(scene, create, undo)[0]


def _compositor_tree(scene, create: bool, undo: list | None):
    """(tree, fresh): `fresh` when this call had to create it (4.2: switch compositing on)."""
    if LEGACY:
        if not scene.use_nodes:
            if not create:
                return None, False
            scene.use_nodes = True  # creates the default tree: Render Layers -> Composite
            if undo is not None:
                undo.append(lambda: setattr(scene, "use_nodes", False))
            return scene.node_tree, True
        return scene.node_tree, False
    tree = scene.compositing_node_group
    if tree is None and create:
        tree = bpy.data.node_groups.new("Compositor Nodes", "CompositorNodeTree")
        scene.compositing_node_group = tree
        if undo is not None:
            def remove_tree(tree=tree):
                scene.compositing_node_group = None
                bpy.data.node_groups.remove(tree)
            undo.append(remove_tree)
        return tree, True
    return tree, False


def _connect_output(tree, node, fresh: bool, undo: list | None) -> None:
    """Feed `node` to the compositor's output when nothing else does, or when the tree was just
    created for it (4.2's default Render Layers -> Composite link is then replaced)."""
    sock = output_socket(tree, undo)
    if sock.is_linked and not fresh:
        return
    for link in list(sock.links):
        tree.links.remove(link)
    tree.links.new(node.outputs["Image"], sock)


def output_socket(tree, undo: list | None = None):
    """The input socket whose image the compositor renders (created when missing)."""
    if LEGACY:
        out = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite"), None)
        if out is None:
            out = _new_node(tree, "CompositorNodeComposite", undo)
            out.location = (400, 0)
        return out.inputs["Image"]
    items = [i for i in tree.interface.items_tree if i.item_type == 'SOCKET' and i.in_out == 'OUTPUT']
    if not items:
        item = tree.interface.new_socket("Image", in_out='OUTPUT', socket_type="NodeSocketColor")
        if undo is not None:
            undo.append(lambda: tree.interface.remove(item))
    outs = [n for n in tree.nodes if n.bl_idname == "NodeGroupOutput"]
    out = next((n for n in outs if n.is_active_output), outs[0] if outs else None)
    if out is None:
        out = _new_node(tree, "NodeGroupOutput", undo)
        out.location = (400, 0)
    return out.inputs[0]


def _new_node(tree, idname, undo):
    node = tree.nodes.new(idname)
    if undo is not None:
        name = node.name
        undo.append(lambda: tree.nodes.remove(tree.nodes[name]) if name in tree.nodes else None)
    return node


def is_hdrcnf_group(group) -> bool:
    return group is not None and group.get(GROUP_TAG) is not None


def is_hdrcnf_node(node) -> bool:
    return (node is not None and node.bl_idname == "CompositorNodeGroup"
            and is_hdrcnf_group(getattr(node, "node_tree", None)))


def group_image_node(group):
    node = group.nodes.get(IMAGE_NODE)
    if node is None:
        node = next((n for n in group.nodes if n.bl_idname == "CompositorNodeImage"), None)
    return node


def node_image(node):
    """The HDR image shown by an HDR-CNF group node (or None)."""
    if not is_hdrcnf_node(node):
        return None
    inode = group_image_node(node.node_tree)
    return inode.image if inode is not None else None


def new_group(name: str = LABEL, image=None):
    """The HDR-CNF node group: Image (the HDR) -> Exposure (group input, EV) -> Group Output."""
    group = bpy.data.node_groups.new(name, "CompositorNodeTree")
    try:
        group[GROUP_TAG] = 1
        group.description = "HDR image computed by HDR-CNF from a photo (see the HDR-CNF sidebar tab)"
        ev = group.interface.new_socket("Exposure", in_out='INPUT', socket_type="NodeSocketFloat")
        ev.default_value = 0.0
        ev.min_value, ev.max_value = -32.0, 32.0
        ev.description = "Exposure change in stops (x 2^EV) applied to the HDR image"
        group.interface.new_socket("Image", in_out='OUTPUT', socket_type="NodeSocketColor")
        gin = group.nodes.new("NodeGroupInput")
        gin.location = (-420, -140)
        inode = group.nodes.new("CompositorNodeImage")
        inode.name = inode.label = IMAGE_NODE
        inode.location = (-420, 120)
        inode.image = image
        exp = group.nodes.new("CompositorNodeExposure")
        exp.name = EXPOSURE_NODE
        exp.location = (-120, 40)
        gout = group.nodes.new("NodeGroupOutput")
        gout.location = (120, 40)
        group.links.new(inode.outputs["Image"], exp.inputs["Image"])
        group.links.new(gin.outputs["Exposure"], exp.inputs["Exposure"])
        group.links.new(exp.outputs["Image"], gout.inputs["Image"])
    except BaseException:
        bpy.data.node_groups.remove(group)
        raise
    return group


def new_group_node(tree, group, location=None, undo: list | None = None):
    node = _new_node(tree, "CompositorNodeGroup", undo)
    node.node_tree = group
    node.name = LABEL  # "HDR-CNF", "HDR-CNF.001", ...
    node.label = LABEL
    node.width = 200
    if location is None:
        xs = [n.location.x for n in tree.nodes if n != node]
        location = (min(xs) - 300 if xs else 0.0, 0.0)
    node.location = location
    for n in tree.nodes:
        n.select = False
    node.select = True
    tree.nodes.active = node
    return node


def add_node(scene, location=None):
    """Add an (empty) HDR-CNF node to the scene's compositor: Add menu / panel button."""
    undo: list = []
    try:
        tree, fresh = _compositor_tree(scene, True, undo)
        group = new_group(LABEL)
        undo.append(lambda: bpy.data.node_groups.remove(group))
        node = new_group_node(tree, group, location, undo)
        _connect_output(tree, node, fresh, undo)
    except BaseException:
        _rollback(undo)
        raise
    return node


def _rollback(undo: list) -> None:
    for fn in reversed(undo):
        try:
            fn()
        except Exception:  # noqa: BLE001 - best effort, keep undoing
            pass


def install_result(scene, hdr: np.ndarray, stem: str, meta: dict):
    """Store `hdr` as the result image for the photo `meta['hdrcnf_source']` and make sure the
    scene's compositor has an HDR-CNF node showing it. Returns (image, node).

    Everything new is built first; only then does the previous image (if any) hand its users and
    its name over. On any failure the new data is removed and the scene is left as it was."""
    key = meta[IMAGE_TAG]
    old = find_result_image(key)
    undo: list = []
    image = new_float_image(".hdrcnf-new", hdr)
    undo.append(lambda: bpy.data.images.remove(image))
    try:
        for k, v in meta.items():
            image[k] = v
        tree, fresh = _compositor_tree(scene, True, undo)
        node = None
        if old is not None:  # its node follows the remap below
            node = next((n for n in tree.nodes if node_image(n) == old), None)
        if node is None:
            active = tree.nodes.active
            if is_hdrcnf_node(active) and node_image(active) is None:
                inode = group_image_node(active.node_tree)
                if inode is not None:
                    group, old_name = active.node_tree, active.node_tree.name
                    inode.image = image
                    group.name = result_name(stem)
                    undo.append(lambda: (setattr(inode, "image", None), setattr(group, "name", old_name)))
                    node = active
        if node is None:
            group = new_group(result_name(stem), image)
            undo.append(lambda: bpy.data.node_groups.remove(group))
            node = new_group_node(tree, group, undo=undo)
        _connect_output(tree, node, fresh, undo)
    except BaseException:
        _rollback(undo)
        raise
    # Commit: the old image hands its users and name to the new one.
    name = result_name(stem)
    if old is not None:
        name = old.name
        old.user_remap(image)
        bpy.data.images.remove(old)
    image.name = name
    return image, node


# ---------------------------------------------------------------------------------- world


def world_nodes(world):
    """(background, mapping) nodes of an HDR-CNF world, or (None, None)."""
    if world is None or not world.get(WORLD_TAG) or world.node_tree is None:
        return None, None
    nt = world.node_tree
    return nt.nodes.get("HDR-CNF Background"), nt.nodes.get("HDR-CNF Mapping")


def set_world_params(world, strength: float | None = None, rotation: float | None = None) -> bool:
    background, mapping = world_nodes(world)
    if background is None:
        return False
    if strength is not None:
        background.inputs["Strength"].default_value = float(strength)
    if rotation is not None and mapping is not None:
        mapping.inputs["Rotation"].default_value[2] = float(rotation)
    return True


def use_as_world(scene, image, strength: float = 1.0, rotation: float = 0.0):
    """Light `scene` with `image` as an equirectangular environment:
    Texture Coordinate -> Mapping (Z rotation) -> Environment Texture -> Background (strength)
    -> World Output, in a new world "HDR-CNF World". The world is fully built before it is
    assigned; a previous HDR-CNF world is replaced, any other previous world gets a fake user so
    it is not lost on save. Returns (world, kept_world_name_or_empty)."""
    world = bpy.data.worlds.new(".hdrcnf-new-world")
    try:
        if LEGACY:
            world.use_nodes = True
        nt = world.node_tree
        nt.nodes.clear()
        coord = nt.nodes.new("ShaderNodeTexCoord")
        coord.name = "HDR-CNF Coordinates"
        coord.location = (-900, 0)
        mapping = nt.nodes.new("ShaderNodeMapping")
        mapping.name = "HDR-CNF Mapping"
        mapping.location = (-700, 0)
        env = nt.nodes.new("ShaderNodeTexEnvironment")
        env.name = "HDR-CNF Environment"
        env.location = (-480, 0)
        env.image = image
        env.projection = 'EQUIRECTANGULAR'
        bg = nt.nodes.new("ShaderNodeBackground")
        bg.name = "HDR-CNF Background"
        bg.location = (-200, 0)
        out = nt.nodes.new("ShaderNodeOutputWorld")
        out.location = (0, 0)
        nt.links.new(coord.outputs["Generated"], mapping.inputs["Vector"])
        nt.links.new(mapping.outputs["Vector"], env.inputs["Vector"])
        nt.links.new(env.outputs["Color"], bg.inputs["Color"])
        nt.links.new(bg.outputs["Background"], out.inputs["Surface"])
        world[WORLD_TAG] = 1
        world["hdrcnf_image"] = image.name
        set_world_params(world, strength, rotation)
    except BaseException:
        bpy.data.worlds.remove(world)
        raise
    prev = scene.world
    kept = ""
    scene.world = world
    if prev is not None and prev != world:
        if prev.get(WORLD_TAG):
            if prev.users == 0:
                bpy.data.worlds.remove(prev)
        elif prev.users == 0:
            prev.use_fake_user = True  # the user's own world: keep it in the file
            kept = prev.name
    world.name = WORLD_NAME  # Blender adds a numeric suffix while another world holds the name
    return world, kept


# ------------------------------------------------------------------------------ save EXR


def save_exr(image, filepath: str, half: bool = True) -> str:
    """Write `image` as a linear OpenEXR (RGB, ZIP; 16-bit half or 32-bit float), atomically.

    Uses `save_render` with a throw-away scene's OpenEXR settings: `Image.save()` would write
    sRGB-encoded values into the EXR, and the user's own render settings stay untouched."""
    filepath = bpy.path.abspath(filepath)
    if not filepath.lower().endswith(".exr"):
        filepath += ".exr"
    folder = os.path.dirname(filepath) or "."
    if not os.path.isdir(folder):
        raise OSError(f"{folder}: folder does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(filepath)}.", suffix=".tmp.exr", dir=folder)
    os.close(fd)
    tmp_scene = bpy.data.scenes.new(".hdrcnf-save-exr")
    try:
        s = tmp_scene.render.image_settings
        if hasattr(s, "media_type"):  # 5.0: must be IMAGE before OPEN_EXR is a valid format
            s.media_type = 'IMAGE'
        s.file_format = 'OPEN_EXR'
        s.color_mode = 'RGB'
        s.color_depth = '16' if half else '32'
        s.exr_codec = 'ZIP'
        image.save_render(tmp, scene=tmp_scene)
        os.chmod(tmp, _NEW_FILE_MODE)  # mkstemp made it 0600
        os.replace(tmp, filepath)
    finally:
        bpy.data.scenes.remove(tmp_scene)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return filepath

