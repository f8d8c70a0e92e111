"""HDR-CNF inference engine: one LDR photo in, a scene-referred HDR OpenEXR out.

The engine depends only on numpy, Pillow, OpenEXR and onnxruntime (TensorRT optional) and never
imports torch, so it can ship inside the Blender extension and run on render nodes without a
training stack.
"""
__version__ = "0.1.0"
