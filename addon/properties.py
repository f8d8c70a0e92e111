# SPDX-License-Identifier: GPL-3.0-or-later
"""Properties: per-scene conversion settings (saved in the .blend) and the run-time job state
(on the window manager: progress and status are not saved with the file)."""
from __future__ import annotations

import math

import bpy
from bpy.props import (BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty,
                       StringProperty)
from bpy.types import PropertyGroup

from . import nodes


def _poll_photo(self, image):
    # An HDR-CNF result is not a photo; offering it would only invite a confusing re-conversion.
    return not nodes.is_result_image(image) and image.type in {'IMAGE', 'MULTILAYER'}


def _poll_result(self, image):
    return nodes.is_result_image(image)


def _update_world(self, context):
    scene = self.id_data
    nodes.set_world_params(scene.world, strength=self.world_strength, rotation=self.world_rotation)


class HDRCNF_SceneSettings(PropertyGroup):
    source: EnumProperty(
        name="Source", default='FILE',
        items=[('FILE', "File", "A photo file on disk (JPEG, PNG, TIFF)"),
               ('IMAGE', "Image", "An image already loaded in Blender")],
        description="Where the photo comes from")
    filepath: StringProperty(name="Photo", subtype='FILE_PATH', default="",
                             description="The photo to convert (JPEG, PNG 8/16-bit, TIFF)")
    image: PointerProperty(name="Image", type=bpy.types.Image, poll=_poll_photo,
                           description="A loaded image to convert")
    use_model_temperature: BoolProperty(name="Model Default", default=True,
                                        description="Use the temperature the model was tuned for")
    temperature: FloatProperty(name="Temperature", default=0.6, min=0.0, soft_max=1.5, step=5,
                               description="Latent temperature: 0 gives the most likely HDR, higher "
                                           "values more varied highlights")
    seed: IntProperty(name="Seed", default=0, min=0, description="Random seed of the flow sample")
    samples: IntProperty(name="Samples", default=1, min=1, soft_max=16, max=256,
                         description="Average this many flow samples (slower, smoother)")
    exposure: FloatProperty(name="Exposure (EV)", default=0.0, soft_min=-10.0, soft_max=10.0, step=10,
                            description="Exposure change in stops baked into the HDR result (x 2^EV)")
    panorama: EnumProperty(
        name="Panorama", default='auto',
        items=[('auto', "Auto", "Wrap horizontally when the photo is a 2:1 equirectangular panorama"),
               ('on', "On", "Treat the photo as a 360° panorama (wrap horizontally)"),
               ('off', "Off", "Never wrap")],
        description="360° panorama handling (left and right edges meet)")
    restore_light: BoolProperty(
        name="Restore Clipped Light", default=True,
        description="Panoramas: add the light the clipped areas hide (a blown-out sun or lamp), as "
                    "predicted by the model's light stage (nothing when it predicts only a little). "
                    "Turn it off for an overcast sky or an evenly lit room, where it can still add a sun "
                    "that is not there. Off: the flow's output alone")
    full_resolution: BoolProperty(
        name="Full Resolution", default=False,
        description="Judge clipped areas at the photo's own size. Off (recommended): where a clipped "
                    "area is too large for the model to see across (a lamp or sky in a big plate), the "
                    "model looks at a reduced copy and its correction is carried back up onto the full-size "
                    "photo, which recovers those highlights better")
    result: PointerProperty(name="Result", type=bpy.types.Image, poll=_poll_result,
                            description="The HDR image used by Use as World and Save as EXR")
    world_strength: FloatProperty(name="Strength", default=1.0, min=0.0, soft_max=10.0,
                                  update=_update_world, description="Strength of the HDRI world lighting")
    world_rotation: FloatProperty(name="Rotation Z", default=0.0, subtype='ANGLE', unit='ROTATION',
                                  soft_min=-math.pi, soft_max=math.pi, update=_update_world,
                                  description="Rotation of the HDRI around the vertical axis")
    exr_half: BoolProperty(name="Half Float", default=True,
                           description="Save 16-bit half floats (smaller) instead of 32-bit floats")


class HDRCNF_RuntimeState(PropertyGroup):
    running: BoolProperty(name="Running", default=False, options={'SKIP_SAVE'})
    progress: FloatProperty(name="Progress", default=0.0, min=0.0, max=100.0, subtype='PERCENTAGE',
                            precision=0, options={'SKIP_SAVE'}, description="Conversion progress")
    status: StringProperty(name="Status", default="", options={'SKIP_SAVE'})
    status_is_error: BoolProperty(default=False, options={'SKIP_SAVE'})
    backend_used: StringProperty(name="Backend", default="", options={'SKIP_SAVE'})


classes = (HDRCNF_SceneSettings, HDRCNF_RuntimeState)


def settings(context):
    return context.scene.hdrcnf


def state(context):
    return context.window_manager.hdrcnf


def register():
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.hdrcnf = PointerProperty(type=HDRCNF_SceneSettings)
    bpy.types.WindowManager.hdrcnf = PointerProperty(type=HDRCNF_RuntimeState)


def unregister():
    del bpy.types.WindowManager.hdrcnf
    del bpy.types.Scene.hdrcnf
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
