# SPDX-License-Identifier: GPL-3.0-or-later
"""Add-on preferences: backend, threads, cache folder, optional custom model folder."""
from __future__ import annotations

import importlib.util
import os
import tempfile

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty
from bpy.types import AddonPreferences

from . import jobs


def _backend_items():
    items = [
        ("auto", "Auto", "TensorRT when it is installed and a CUDA GPU is present, else onnxruntime"),
        ("onnxruntime", "onnxruntime", "onnxruntime (CPU; CUDA when the installed build has it)"),
    ]
    if importlib.util.find_spec("tensorrt") is not None:
        items.append(("tensorrt", "TensorRT", "NVIDIA TensorRT (needs a CUDA GPU)"))
    return items


_BACKEND_ITEMS = _backend_items()  # computed once: EnumProperty keeps a reference


class HDRCNF_AddonPreferences(AddonPreferences):
    bl_idname = __package__

    backend: EnumProperty(name="Backend", items=_BACKEND_ITEMS, default="auto",
                          description="Inference backend that runs the model")
    threads: IntProperty(name="Threads", default=0, min=0, max=512,
                         description="CPU threads for onnxruntime (0: one per physical core)")
    cache_dir: StringProperty(name="Cache Folder", subtype='DIR_PATH', default="",
                              description="Folder for engine caches (empty: the extension's own user folder)")
    model_dir: StringProperty(name="Custom Model", subtype='DIR_PATH', default="",
                              description="A model bundle folder (model.json + model.onnx); "
                                          "empty: the model shipped with the extension")

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "backend")
        layout.prop(self, "threads")
        layout.prop(self, "cache_dir")
        row = layout.row()
        row.active = False
        row.label(text=f"In use: {cache_folder(self, create=False)}")
        layout.prop(self, "model_dir")
        label, problem = jobs.model_info(model_folder(self))
        row = layout.row()
        if problem:
            row.alert = True
            row.label(text=problem, icon='ERROR')
        else:
            row.label(text=f"Model: {label}", icon='CHECKMARK')
        layout.label(text=f"Backend: {jobs.planned_backend(self.backend)}")


class _Defaults:
    """Stand-in when the add-on is registered without being enabled as one (scripts, tests)."""

    backend = "auto"
    threads = 0
    cache_dir = ""
    model_dir = ""


def get(context=None):
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None and addon.preferences is not None else _Defaults()


def model_folder(prefs) -> str:
    return bpy.path.abspath(prefs.model_dir) if prefs.model_dir.strip() else ""


def cache_folder(prefs, create: bool = True) -> str:
    """The cache folder in use: the preference, else the extension's user folder
    (`extension_path_user(__package__, path="cache")`), else a temporary folder when the add-on
    runs from a source tree (not installed as an extension)."""
    if prefs.cache_dir.strip():
        path = bpy.path.abspath(prefs.cache_dir)
        if create:
            os.makedirs(path, exist_ok=True)
        return path
    try:
        return bpy.utils.extension_path_user(__package__, path="cache", create=create)
    except (ValueError, AttributeError):  # not an extension (legacy add-on / source tree)
        path = os.path.join(tempfile.gettempdir(), "hdrcnf-cache")
        if create:
            os.makedirs(path, exist_ok=True)
        return path


classes = (HDRCNF_AddonPreferences,)

register, unregister = bpy.utils.register_classes_factory(classes)
