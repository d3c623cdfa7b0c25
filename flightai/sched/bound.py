"""A task bound to its signals: port mapping, output checks, read-only results."""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt

from flightai.config.schema import MissionConfig, TaskConfig
from flightai.sched.task import Task

Signals = dict[str, npt.NDArray[np.generic]]


class TaskFault(Exception):
    """A job raised or returned outputs that do not match the declared signals."""


def frozen(value: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    """A read-only C-ordered copy, so a published value can be shared without being changed.

    C order whatever the source's layout: a value from an in-process source then
    has the memory layout the wire delivers, so a task computes the same bits
    live and replayed (numpy and BLAS pick different kernels, with different
    rounding, for Fortran-ordered operands).
    """
    out: npt.NDArray[np.generic] = value.copy(order="C")
    out.setflags(write=False)
    return out


def zeros_for(config: MissionConfig, signal: str) -> npt.NDArray[np.generic]:
    """The read-only initial value of a signal: zeros of its dtype and shape."""
    spec = config.signal(signal)
    value = np.zeros(spec.shape, dtype=spec.dtype)
    value.flags.writeable = False
    return value


class BoundTask:
    """Runs a :class:`Task` on signal-named snapshots and checks what it returns.

    Args:
        config: the task's config entry.
        task: the job body.
        mission: the whole config, for signal dtypes and shapes.
    """

    def __init__(self, config: TaskConfig, task: Task, mission: MissionConfig) -> None:
        self.config = config
        self.name = config.name
        self.task = task
        self.inputs: tuple[tuple[str, str], ...] = tuple(config.inputs)
        self._outputs = tuple((port, sig, np.dtype(mission.signal(sig).dtype),
                               mission.signal(sig).shape) for port, sig in config.outputs)

    def execute(self, snapshot: Signals) -> tuple[Signals, int]:
        """Run one job; return its outputs by signal name and its wall execution time (ns).

        Raises:
            TaskFault: the task raised, or an output is missing or has the wrong
                dtype or shape.
        """
        return self.run({port: snapshot[sig] for port, sig in self.inputs})

    def run(self, inputs: Signals) -> tuple[Signals, int]:
        """:meth:`execute` on inputs already named by port (``inputs``: port to signal)."""
        wall_start_ns = time.perf_counter_ns()
        try:
            result = self.task.run(inputs)
        except Exception as exc:  # a task's own bug is a fault value, not a crash
            raise TaskFault(f"{type(exc).__name__}: {exc}") from exc
        wall_exec_ns = time.perf_counter_ns() - wall_start_ns
        outputs: Signals = {}
        for port, sig, dtype, shape in self._outputs:
            try:
                value = result[port]
            except KeyError:
                raise TaskFault(f"output port {port!r} missing") from None
            except Exception as exc:  # not a mapping at all
                raise TaskFault(f"outputs are a {type(result).__name__}, not a mapping "
                                f"of port names to arrays") from exc
            if type(value) is not np.ndarray:
                value = np.asarray(value)
            if (value.dtype is not dtype and value.dtype != dtype) or value.shape != shape:
                raise TaskFault(f"output {port!r} is {value.dtype}{list(value.shape)}, "
                                f"signal {sig!r} is {dtype}{list(shape)}")
            out = value.copy(order="C")  # frozen(), inline: this runs for every output
            out.setflags(write=False)
            outputs[sig] = out
        return outputs, wall_exec_ns
