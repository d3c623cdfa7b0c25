"""Live Foxglove views of a running bench (``flightai hil view``).

:mod:`.live` serves a runtime's outputs and their views (:mod:`hil.record.views`)
over a Foxglove WebSocket; :mod:`.cli` is the command.
"""

from hil.view.live import DEFAULT_PORT, LOOPBACK, LiveView

__all__ = ["DEFAULT_PORT", "LOOPBACK", "LiveView"]
