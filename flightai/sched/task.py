"""The one protocol every task implements, ONNX model or Python callable."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np
import numpy.typing as npt

Arrays = Mapping[str, npt.NDArray[np.generic]]


class Task(Protocol):
    """A job body: port-named arrays in, port-named arrays out.

    ``run`` must be deterministic in its inputs and its own state; the
    executive never calls ``run`` of one task concurrently with itself.
    """

    def run(self, inputs: Arrays) -> Arrays:
        """Compute the outputs of one job from the inputs snapshotted at release."""
        ...

    def warmup(self, inputs: Arrays) -> None:
        """Exercise the code path before READY without changing any state."""
        ...

    def describe(self) -> dict[str, str]:
        """A few facts for ``flightai check`` and telemetry (kind, providers, ...)."""
        ...
