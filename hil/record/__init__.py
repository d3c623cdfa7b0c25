"""Recordings of bus traffic in MCAP files.

Written by :mod:`.recorder` (with the Foxglove views of :mod:`.views` beside the
bus messages), read back by :mod:`.reader`, salvaged after a kill by
:mod:`.recover`, with the platform fingerprint of :mod:`.fingerprint`.

The byte layout is in ``docs/hil.md`` (Recording).
"""

from hil.record.reader import Recorded, Recording, unpack_frames
from hil.record.recorder import Recorder, RecorderOptions, RecorderStats, pack_frames

__all__ = ["Recorded", "Recorder", "RecorderOptions", "RecorderStats", "Recording",
           "pack_frames", "unpack_frames"]
