"""Replay a recording into a runtime and compare its outputs with the recorded ones.

:mod:`.player` rebuilds the recorded mission and feeds it the recorded sensor
samples and ticks, in-process or over the bus (:mod:`.bus`), fast, in lockstep
or in real time, with the controls of :mod:`.control`; :mod:`.compare` checks
two publication streams against each other, bit for bit or within per-signal
tolerances.
"""

from hil.replay.compare import Comparison, Divergence, Tolerance, compare, recorded_publications
from hil.replay.player import (
    BusTarget,
    ControlFactory,
    Mode,
    ReplayResult,
    compare_replay,
    recorded_config,
    replay,
)

__all__ = ["BusTarget", "Comparison", "ControlFactory", "Divergence", "Mode", "ReplayResult",
           "Tolerance", "compare", "compare_replay", "recorded_config", "recorded_publications",
           "replay"]
