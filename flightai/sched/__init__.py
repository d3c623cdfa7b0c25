"""The deterministic core: schedule table, clocks, LET executive, faults, health.

It moves opaque numpy arrays between tasks at logical instants. It must not
import ZeroMQ, onnxruntime or anything under ``hil``: determinism is testable
here without sockets or models.
"""
