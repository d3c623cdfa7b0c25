"""Replay a recording into an in-process runtime and compare its outputs with the recorded ones.

:mod:`.player` rebuilds the recorded mission and runs it on the recorded sensor
samples and ticks; :mod:`.compare` checks two publication streams against each
other, bit for bit or within per-signal tolerances.
"""

from hil.replay.compare import Comparison, Divergence, Tolerance, compare, recorded_publications
from hil.replay.player import ReplayResult, recorded_config, replay

__all__ = ["Comparison", "Divergence", "ReplayResult", "Tolerance", "compare",
           "recorded_config", "recorded_publications", "replay"]
