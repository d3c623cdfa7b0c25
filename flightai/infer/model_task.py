"""An ONNX model as a :class:`~flightai.sched.task.Task`, with I/O binding on reused buffers."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from flightai.config.schema import ModelConfig
from flightai.infer.session import SessionReport, build_session, ort_errors, read_verified
from flightai.sched.task import Arrays


class ModelTask:
    """Runs one session through an I/O binding set up once.

    Inputs are copied into preallocated buffers and outputs written by
    onnxruntime into preallocated buffers (the executive copies them out when
    it freezes them), which keeps the call near onnxruntime's floor.

    Args:
        config: the model entry (signature, options, warm-up count).
        session: a session built by :func:`build_session`.
        report: its provider report.
    """

    def __init__(self, config: ModelConfig, session: ort.InferenceSession,
                 report: SessionReport) -> None:
        self.config = config
        self.report = report
        self._session = session
        self._binding = session.io_binding()
        self._inputs: dict[str, npt.NDArray[np.generic]] = {}
        self._outputs: dict[str, npt.NDArray[np.generic]] = {}
        for port in config.inputs:
            buf = np.zeros(port.shape, dtype=port.dtype)
            self._binding.bind_cpu_input(port.name, buf)
            self._inputs[port.name] = buf
        for port in config.outputs:
            buf = np.zeros(port.shape, dtype=port.dtype)
            self._binding.bind_output(port.name, "cpu", 0, buf.dtype, list(buf.shape),
                                      buf.ctypes.data)
            self._outputs[port.name] = buf

    @classmethod
    def load(cls, config: ModelConfig) -> ModelTask:
        """Verify the file's hash, build the session from those bytes, bind its I/O."""
        session, report = build_session(config, read_verified(config))
        return cls(config, session, report)

    def run(self, inputs: Arrays) -> Arrays:
        """One inference; the returned arrays are reused by the next call."""
        for name, buf in self._inputs.items():
            np.copyto(buf, inputs[name], casting="no")
        self._session.run_with_iobinding(self._binding)
        return self._outputs

    def warmup(self, inputs: Arrays) -> None:
        """Run ``warmup_runs`` inferences so allocations and kernels are ready before READY."""
        with ort_errors(self.config.name, "run its warm-up"):
            for _ in range(self.config.warmup_runs):
                self.run(inputs)

    def describe(self) -> dict[str, str]:
        """Kind, model, hash and running providers."""
        return {"kind": "onnx", "model": self.config.name, "sha256": self.report.sha256,
                "providers": ", ".join(self.report.running),
                "fallback": str(self.report.fallback).lower()}
