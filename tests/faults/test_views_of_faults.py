"""Corrupt samples in a recording get no Foxglove view of their own."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from flightai.bus.wire import encode
from hil.record import Recording
from hil.record.recorder import Recorder


def test_a_sample_of_another_dtype_or_shape_adds_no_view_channel(tmp_path: Path) -> None:
    with Recorder(tmp_path / "run.mcap") as recorder:
        for seq, value in enumerate([np.zeros(3), np.zeros(3, np.float32), np.zeros(4),
                                     np.ones(3)]):
            recorder.record_sent(encode("imu.dv", seq, seq * 10, [("value", value)]))
    recording = Recording(tmp_path / "run.mcap")
    topics = Counter(c.topic for c in recording.channels.values())
    views = {t: n for t, n in topics.items() if "imu" in t and t != "imu.dv"}
    assert views and set(views.values()) == {1}, topics
    assert sum(1 for m in recording.messages if m.topic == "imu.dv") == 4
