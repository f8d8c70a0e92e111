# SPDX-License-Identifier: GPL-3.0-or-later
"""HDR-CNF for Blender: one ordinary photo in, a scene-referred HDR image (and an HDRI world) out.

Registration only; see operators.py, panels.py, nodes.py, preferences.py, properties.py and
jobs.py. The inference engine is vendored as the subpackage `engine` by build_addon.py
(engine_link.py falls back to the repository's engine in a source tree).
"""
if "bpy" in locals():  # "Reload Scripts": pick up edited modules
    import importlib

    for _m in (engine_link, jobs, nodes, preferences, properties, operators, panels):  # noqa: F821
        importlib.reload(_m)
    del _m

import bpy  # noqa: E402,F401

from . import engine_link, jobs, nodes, operators, panels, preferences, properties  # noqa: E402

_modules = (preferences, properties, operators, panels)


def register():
    for module in _modules:
        module.register()


def unregister():
    for module in reversed(_modules):
        module.unregister()
