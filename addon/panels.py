# SPDX-License-Identifier: GPL-3.0-or-later
"""Panels: an "HDR-CNF" tab in the compositor's sidebar and a panel in World properties.

Both draw the same controls: source photo, conversion settings, Convert (a progress bar and
Cancel while running), the result with Use as World / Save as EXR, and the model and backend.
"""
from __future__ import annotations

import bpy
from bpy.types import Panel

from . import jobs, preferences


def draw_hdrcnf(layout, context, compositor: bool) -> None:
    s = context.scene.hdrcnf
    st = context.window_manager.hdrcnf

    col = layout.column()
    col.row().prop(s, "source", expand=True)
    if s.source == 'FILE':
        col.prop(s, "filepath", text="")
    else:
        col.template_ID(s, "image", open="image.open")

    col = layout.column()
    col.use_property_split = True
    col.use_property_decorate = False
    col.prop(s, "use_model_temperature", text="Model Temperature")
    sub = col.column()
    sub.active = not s.use_model_temperature
    sub.prop(s, "temperature")
    col.prop(s, "seed")
    col.prop(s, "samples")
    col.prop(s, "exposure")
    col.row().prop(s, "panorama", expand=True)
    col.prop(s, "restore_light")
    col.prop(s, "full_resolution")

    if st.running:
        row = layout.row(align=True)
        if hasattr(row, "progress"):
            row.progress(factor=st.progress / 100.0, type='BAR', text=f"Converting {st.progress:.0f} %")
        else:  # pragma: no cover - Blender < 4.0 is not supported anyway
            row.prop(st, "progress", slider=True)
        row.operator("hdrcnf.cancel", text="", icon='CANCEL')
    else:
        row = layout.row(align=True)
        row.scale_y = 1.4
        row.operator("hdrcnf.convert", icon='PLAY')
        if compositor:
            layout.operator("hdrcnf.add_node", text="Add HDR-CNF Node", icon='NODE')
    if st.status:
        row = layout.row()
        row.alert = st.status_is_error
        row.label(text=st.status, icon='ERROR' if st.status_is_error else 'INFO')

    box = layout.box()
    box.label(text="Result", icon='IMAGE_DATA')
    box.prop(s, "result", text="")
    row = box.row(align=True)
    row.enabled = s.result is not None
    row.operator("hdrcnf.use_as_world", icon='WORLD')
    row.operator("hdrcnf.save_exr", icon='EXPORT', text="Save as EXR")
    col = box.column()
    col.use_property_split = True
    col.use_property_decorate = False
    col.prop(s, "world_strength")
    col.prop(s, "world_rotation")
    col.prop(s, "exr_half")

    prefs = preferences.get(context)
    label, problem = jobs.model_info(preferences.model_folder(prefs))
    col = layout.column(align=True)
    if problem:
        row = col.row()
        row.alert = True
        row.label(text=f"Model: {problem}", icon='ERROR')
    else:
        col.label(text=f"Model: {label}", icon='OUTLINER_DATA_LIGHTPROBE')
    col.label(text=f"Backend: {st.backend_used or jobs.planned_backend(prefs.backend)}", icon='SETTINGS')


class HDRCNF_PT_compositor(Panel):
    bl_space_type = 'NODE_EDITOR'
    bl_region_type = 'UI'
    bl_category = "HDR-CNF"
    bl_label = "HDR-CNF"

    @classmethod
    def poll(cls, context):
        space = context.space_data
        return (space is not None and space.type == 'NODE_EDITOR'
                and space.tree_type == 'CompositorNodeTree' and context.scene is not None)

    def draw(self, context):
        draw_hdrcnf(self.layout, context, compositor=True)


class HDRCNF_PT_world(Panel):
    bl_space_type = 'PROPERTIES'
    bl_region_type = 'WINDOW'
    bl_context = "world"
    bl_label = "HDR-CNF: Photo to HDRI"

    @classmethod
    def poll(cls, context):
        return context.scene is not None

    def draw(self, context):
        draw_hdrcnf(self.layout, context, compositor=False)


classes = (HDRCNF_PT_compositor, HDRCNF_PT_world)

register, unregister = bpy.utils.register_classes_factory(classes)
