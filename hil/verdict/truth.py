"""The ground-truth channels a simulated run adds to its recording, for verdicts and reports.

A runtime never sees the truth, so a recording of the bus alone cannot say how
fast the vehicle touched down. ``flightai demo --record`` therefore records,
in direction ``ground_truth`` (never replayed, never compared), one
``truth.state`` message per tick and one ``truth.touchdown`` message when the
descent ends, each a flightai wire message whose arrays are named below (SI
units, landing frame). Verdict files select them like any other topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from flightai.bus.inbound import TICK_TOPIC
from flightai.bus.wire import encode
from hil.ltd1.criteria import FlightRecord
from hil.ltd1.loop import Plant
from hil.record.recorder import Recorder

GROUND_TRUTH = "ground_truth"
"""The channels' ``direction`` metadata."""
STATE_TOPIC = "truth.state"
"""Per tick, at the tick's instant: ``r_m`` [3], ``v_mps`` [3], ``mass_kg`` [1],
``agl_m`` [1] (float64)."""
TOUCHDOWN_TOPIC = "truth.touchdown"
"""Once, at touchdown (or at the end of a run that never touched down): ``r_m`` [3]
(float64); ``touchdown``, ``early_contact`` (uint8 [1], 0 or 1); ``vertical_speed_mps``,
``horizontal_speed_mps``, ``landing_error_m``, ``propellant_kg``, ``nav_error_m``
(float64 [1]): the figures of :class:`~hil.ltd1.criteria.FlightRecord`."""
_TICK = TICK_TOPIC.encode()


class TruthRecorder:
    """Records the truth next to what a flight-software stub sends.

    Give the stub :meth:`on_send` instead of the recorder's ``record_sent``:
    after each tick (the simulator is at the tick's instant then) it records
    ``truth.state``; :meth:`record_outcome` records ``truth.touchdown``.

    Args:
        recorder: the run's recorder.
        plant: the simulated vehicle the stub flies.
    """

    def __init__(self, recorder: Recorder, plant: Plant) -> None:
        self.recorder = recorder
        self.plant = plant
        self._seq: dict[str, int] = {}

    def on_send(self, frames: Sequence[Any]) -> object:
        """Record a message sent to the runtime, then the truth if it was a tick."""
        sent = self.recorder.record_sent(frames)
        if bytes(frames[0]) == _TICK:
            truth = self.plant.sim.truth()
            self._record(STATE_TOPIC, truth.t_ns, [
                ("r_m", truth.r_m), ("v_mps", truth.v_mps),
                ("mass_kg", np.array([truth.mass_kg])), ("agl_m", np.array([truth.agl_m]))])
        return sent

    def record_outcome(self, flight: FlightRecord) -> None:
        """Record ``truth.touchdown``: the flight's figures and where it ended."""
        outcome = self.plant.sim.outcome()
        self._record(TOUCHDOWN_TOPIC, outcome.t_ns, [
            ("r_m", np.array(outcome.r_m, np.float64)),
            ("touchdown", np.array([flight.touchdown], np.uint8)),
            ("early_contact", np.array([flight.early_contact], np.uint8)),
            *((name, np.array([getattr(flight, name)], np.float64)) for name in (
                "vertical_speed_mps", "horizontal_speed_mps", "landing_error_m",
                "propellant_kg", "nav_error_m"))])

    def _record(self, topic: str, t_ns: int, arrays: list[tuple[str, Any]]) -> None:
        seq = self._seq.get(topic, 0)
        self._seq[topic] = seq + 1
        self.recorder.record(encode(topic, seq, t_ns, arrays), GROUND_TRUTH)
