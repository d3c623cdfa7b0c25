"""ONNX inference: hash-verified model bytes, pinned sessions, model tasks.

The only package that imports onnxruntime; its exceptions are translated in
:mod:`.session`. Must not import the scheduler's executive or the bus.
"""
