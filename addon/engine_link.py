# SPDX-License-Identifier: GPL-3.0-or-later
"""Where the add-on finds the HDR-CNF engine.

In the built extension, build_addon.py vendors the repository's `engine/` package (and the default
model) as the subpackage `<this package>.engine`, so it is imported relatively: the absolute name
(`bl_ext.<repository>.hdrcnf.engine`) depends on the repository the user installed into.

In the source tree there is no `addon/engine`; for development the repository's own top-level
`engine` package (the folder next to `addon/`) is used instead.

Engine modules are imported on first use, not at registration, so enabling the add-on stays fast
and never imports onnxruntime or Pillow (bundled wheels) until a conversion needs them.
"""
from __future__ import annotations

import importlib
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
#: True in the built extension (engine copied into the add-on), False in the source tree.
VENDORED = os.path.isfile(os.path.join(_HERE, "engine", "__init__.py"))


def _base() -> str:
    if VENDORED:
        return f"{__package__}.engine"
    root = os.path.dirname(_HERE)
    if os.path.isfile(os.path.join(root, "engine", "__init__.py")) and root not in sys.path:
        sys.path.append(root)  # appended: never shadow Blender's own modules
    return "engine"


def module(name: str = ""):
    """The engine package (`name` empty) or one of its submodules, e.g. `module("convert")`."""
    base = _base()
    return importlib.import_module(f"{base}.{name}" if name else base)


def errors():
    """engine.errors (InputError, BundleError, Cancelled)."""
    return module("errors")
