# SPDX-License-Identifier: GPL-3.0-or-later
"""Operators: Convert (modal with a worker thread in the UI, synchronous in background mode or
with 'EXEC_DEFAULT'), Cancel, Use as World, Save as EXR, and adding the HDR-CNF node.

Errors (unreadable/too-small/non-image file, missing model, failing backend) are reported with
one line through `self.report({'ERROR'}, ...)`; the operator then returns {'CANCELLED'} and the
file is left as it was. Internal errors print their traceback to the console only.
"""
from __future__ import annotations

import os
import sys
import traceback

import bpy
from bpy.app.handlers import persistent
from bpy.props import BoolProperty, StringProperty
from bpy.types import Operator
from bpy_extras.io_utils import ExportHelper

from . import engine_link, jobs, nodes, preferences, properties

#: The conversion running in the UI (one at a time); None otherwise.
_active_job: jobs.ConversionJob | None = None


# ------------------------------------------------------------------------ shared helpers


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0] or "photo"


def source_from_image(image) -> jobs.Source:
    """A loaded image as a conversion source (main thread). A plain image file on disk is read
    by the engine exactly as the CLI would (EXIF orientation, 16-bit); packed or generated
    images are read from Blender's pixels and display-encoded."""
    errors = engine_link.errors()
    if image is None:
        raise errors.InputError("no image chosen: pick a loaded image in the HDR-CNF panel")
    if nodes.is_result_image(image):
        raise errors.InputError(f"{image.name}: is an HDR-CNF result; pick the original photo")
    if image.source == 'FILE' and image.packed_file is None:
        path = os.path.normpath(bpy.path.abspath(image.filepath, library=image.library))
        if os.path.isfile(path):
            return jobs.Source(name=_stem(path), key=path, path=path)
    px = nodes.image_pixels(image)  # loads the image if needed
    h, w = px.shape[:2]
    min_side = getattr(engine_link.module("io"), "MIN_SIDE", 8)
    if px.size == 0 or min(h, w) < min_side:
        raise errors.InputError(f"{image.name}: image is {w}x{h} pixels (has it lost its file?); "
                                f"at least {min_side}x{min_side} needed")
    if px.shape[2] >= 3:
        rgb = px[..., :3]
    else:
        rgb = px[..., :1].repeat(3, axis=2)
    if image.is_float and not image.colorspace_settings.is_data:
        rgb = engine_link.module("color").linear_to_srgb(rgb)  # float pixels are scene-linear
    rgb = rgb.clip(0.0, 1.0).astype("float32")
    return jobs.Source(name=_stem(image.name), key=f"image:{image.name_full}", pixels=rgb)


def prepare(context) -> tuple[jobs.Source, jobs.Settings]:
    """Read the panel settings and preferences (main thread). Raises engine InputError."""
    errors = engine_link.errors()
    s = properties.settings(context)
    prefs = preferences.get(context)
    try:
        cache = preferences.cache_folder(prefs)
    except OSError:
        cache = ""
    settings = jobs.Settings(
        temperature=None if s.use_model_temperature else float(s.temperature),
        seed=int(s.seed), samples=int(s.samples), exposure=float(s.exposure), panorama=s.panorama,
        light=bool(s.restore_light), full_resolution=bool(s.full_resolution),
        backend=prefs.backend, threads=int(prefs.threads), model_dir=preferences.model_folder(prefs),
        cache_dir=cache)
    if s.source == 'IMAGE':
        return source_from_image(s.image), settings
    if not s.filepath.strip():
        raise errors.InputError("no photo chosen: pick a photo file in the HDR-CNF panel")
    path = os.path.normpath(bpy.path.abspath(s.filepath))
    return jobs.Source(name=_stem(path), key=path, path=path), settings


def _set_status(context, text: str, error: bool = False) -> None:
    st = properties.state(context)
    st.status = text
    st.status_is_error = error


def _fail(context, report, exc: BaseException) -> set:
    errors = engine_link.errors()
    if isinstance(exc, errors.Cancelled):
        _set_status(context, "Cancelled")
        report({'WARNING'}, "HDR-CNF: conversion cancelled")
        return {'CANCELLED'}
    if not isinstance(exc, (errors.InputError, MemoryError)):
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    message = jobs.error_message(exc)
    _set_status(context, message, error=True)
    report({'ERROR'}, f"HDR-CNF: {message}")
    return {'CANCELLED'}


def _finish(context, report, output: jobs.Output, image, scene=None) -> set:
    (scene or context.scene).hdrcnf.result = image
    st = properties.state(context)
    st.progress = 100.0
    st.backend_used = output.backend
    w, h = image.size
    text = (f"{image.name}: {w}x{h}, peak {output.peak_stops:+.1f} stops, {output.seconds:.1f} s"
            f"{' (panorama)' if output.panorama else ''}"
            f"{f', clipped light +{output.light_stops:.1f} stops' if output.light_stops else ''}"
            f"{f', clipped areas judged at 1/{output.flow_factor} size' if output.flow_factor > 1 else ''}")
    _set_status(context, text)
    report({'INFO'}, f"Converted {text}")
    return {'FINISHED'}


def convert_sync(context, report) -> set:
    """The whole conversion on the calling (main) thread: prepare, run, apply.
    Returns {'FINISHED'} or {'CANCELLED'} (after reporting the error)."""
    if _active_job is not None:
        report({'ERROR'}, "HDR-CNF: a conversion is already running")
        return {'CANCELLED'}
    try:
        source, settings = prepare(context)
        output = jobs.run_conversion(source, settings)
        image, _node = jobs.apply_result(context, output)
    except Exception as e:  # noqa: BLE001 - reported as one line, never a traceback popup
        return _fail(context, report, e)
    return _finish(context, report, output, image)


def current_result(context):
    """The HDR image Use as World / Save as EXR work on: the panel's Result."""
    image = properties.settings(context).result
    return image if image is not None and nodes.is_result_image(image) else None


def require_result(context, report):
    """current_result(), or None after reporting the one-line error every result operator gives."""
    image = current_result(context)
    if image is None:
        report({'ERROR'}, "HDR-CNF: no HDR result yet: press Convert first")
    return image


def _redraw(context) -> None:
    wm = context.window_manager
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type in {'NODE_EDITOR', 'PROPERTIES'}:
                area.tag_redraw()


# ----------------------------------------------------------------------------- operators


class HDRCNF_OT_convert(Operator):
    """Convert the photo into a scene-referred HDR image with HDR-CNF (Esc cancels)"""
    bl_idname = "hdrcnf.convert"
    bl_label = "Convert"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        return context.scene is not None and _active_job is None

    def execute(self, context):
        return convert_sync(context, self.report)

    def invoke(self, context, event):
        if bpy.app.background or context.window is None:
            return self.execute(context)  # no event loop: timers and modal handlers never run
        result = self.start(context)
        if result == {'RUNNING_MODAL'}:
            context.window_manager.modal_handler_add(self)
        return result

    def start(self, context):
        """Prepare on the main thread, start the worker and the timer (the modal part)."""
        global _active_job
        try:
            source, settings = prepare(context)
        except Exception as e:  # noqa: BLE001
            return _fail(context, self.report, e)
        self._job = jobs.ConversionJob(source, settings).start()
        self._scene_name = context.scene.name
        _active_job = self._job
        st = properties.state(context)
        st.running, st.progress = True, 0.0
        _set_status(context, f"Converting {source.name}...")
        wm = context.window_manager
        wm.progress_begin(0, 100)
        self._timer = wm.event_timer_add(0.1, window=context.window)
        _redraw(context)
        return {'RUNNING_MODAL'}

    def modal(self, context, event):
        job = self._job
        if event.type == 'ESC' and event.value == 'PRESS':
            job.cancel()
            _set_status(context, "Cancelling...")
            return {'RUNNING_MODAL'}
        if event.type != 'TIMER':
            return {'PASS_THROUGH'}
        state = job.poll()
        st = properties.state(context)
        st.progress = 100.0 * job.progress
        context.window_manager.progress_update(int(st.progress))
        _redraw(context)
        if not job.finished:
            return {'PASS_THROUGH'}
        self._end(context)
        if state == jobs.DONE:
            scene = bpy.data.scenes.get(self._scene_name) or context.scene
            try:
                image, _node = jobs.apply_result(context, job.output, scene=scene)
            except Exception as e:  # noqa: BLE001
                return _fail(context, self.report, e)
            return _finish(context, self.report, job.output, image, scene)
        if state == jobs.CANCELLED:
            return _fail(context, self.report, engine_link.errors().Cancelled(job.error))
        _set_status(context, job.error, error=True)
        self.report({'ERROR'}, f"HDR-CNF: {job.error}")
        return {'CANCELLED'}

    def cancel(self, context):  # Blender ends the modal operator (file load, window closed)
        self._job.cancel()
        self._end(context)

    def _end(self, context):
        global _active_job
        if _active_job is self._job:
            _active_job = None
        wm = context.window_manager
        if getattr(self, "_timer", None) is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        properties.state(context).running = False
        _redraw(context)


class HDRCNF_OT_cancel(Operator):
    """Stop the running HDR-CNF conversion"""
    bl_idname = "hdrcnf.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return _active_job is not None

    def execute(self, context):
        if _active_job is not None:
            _active_job.cancel()
            _set_status(context, "Cancelling...")
        return {'FINISHED'}


class HDRCNF_OT_use_as_world(Operator):
    """Light the scene with the HDR result: Environment Texture -> Background -> World Output"""
    bl_idname = "hdrcnf.use_as_world"
    bl_label = "Use as World"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        return context.scene is not None

    def execute(self, context):
        image = require_result(context, self.report)
        if image is None:
            return {'CANCELLED'}
        s = properties.settings(context)
        try:
            world, kept = nodes.use_as_world(context.scene, image, s.world_strength, s.world_rotation)
        except Exception as e:  # noqa: BLE001
            return _fail(context, self.report, e)
        note = f" (previous world '{kept}' kept with a fake user)" if kept else ""
        if not image.get("hdrcnf_panorama", True):
            note += "; the photo is not a 360° panorama, so the lighting is approximate"
        self.report({'INFO'}, f"HDR-CNF: {image.name} lights the scene as '{world.name}'{note}")
        return {'FINISHED'}


class HDRCNF_OT_save_exr(Operator, ExportHelper):
    """Save the HDR result as a linear OpenEXR file"""
    bl_idname = "hdrcnf.save_exr"
    bl_label = "Save as EXR"
    bl_options = {'REGISTER'}

    filename_ext = ".exr"
    filter_glob: StringProperty(default="*.exr", options={'HIDDEN'})
    half: BoolProperty(name="Half Float", default=True,
                       description="16-bit half floats (smaller) instead of 32-bit floats")

    @classmethod
    def poll(cls, context):
        return context.scene is not None

    def invoke(self, context, event):
        image = require_result(context, self.report)
        if image is None:
            return {'CANCELLED'}
        self.half = properties.settings(context).exr_half
        if not self.filepath:
            folder = os.path.dirname(bpy.data.filepath) if bpy.data.filepath else os.path.expanduser("~")
            stem = image.name[len(nodes.LABEL) + 1:] if image.name.startswith(nodes.LABEL + " ") else image.name
            self.filepath = os.path.join(folder, bpy.path.clean_name(stem) + ".exr")
        return super().invoke(context, event)

    def execute(self, context):
        image = require_result(context, self.report)
        if image is None:
            return {'CANCELLED'}
        try:
            path = nodes.save_exr(image, self.filepath, half=self.half)
        except Exception as e:  # noqa: BLE001
            return _fail(context, self.report, e)
        self.report({'INFO'}, f"HDR-CNF: saved {path}")
        return {'FINISHED'}


class HDRCNF_OT_add_node(Operator):
    """Add an HDR-CNF node (an image group with an Exposure input) to the scene's compositor"""
    bl_idname = "hdrcnf.add_node"
    bl_label = "HDR-CNF"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        return context.scene is not None

    def execute(self, context):
        location = None
        space = context.space_data
        if space is not None and space.type == 'NODE_EDITOR' and hasattr(space, "cursor_location"):
            location = tuple(space.cursor_location)
        try:
            node = nodes.add_node(context.scene, location)
        except Exception as e:  # noqa: BLE001
            return _fail(context, self.report, e)
        self.report({'INFO'}, f"HDR-CNF: added node '{node.name}'; choose a photo and press Convert")
        return {'FINISHED'}


def menu_add(self, context):
    space = context.space_data
    if space is None or getattr(space, "tree_type", "") != 'CompositorNodeTree':
        return
    layout = self.layout
    layout.separator()
    layout.operator(HDRCNF_OT_add_node.bl_idname, text="HDR-CNF", icon='LIGHT_SUN')


@persistent
def _on_load_pre(*_args):
    """A conversion started in the previous file must not land in the next one."""
    if _active_job is not None:
        _active_job.cancel()


classes = (HDRCNF_OT_convert, HDRCNF_OT_cancel, HDRCNF_OT_use_as_world, HDRCNF_OT_save_exr,
           HDRCNF_OT_add_node)


def register():
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.NODE_MT_add.append(menu_add)
    bpy.app.handlers.load_pre.append(_on_load_pre)


def unregister():
    global _active_job
    if _active_job is not None:
        _active_job.cancel()
        _active_job.wait(5.0)
        _active_job = None
    if _on_load_pre in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_on_load_pre)
    bpy.types.NODE_MT_add.remove(menu_add)
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
    jobs.clear_engine_cache()
