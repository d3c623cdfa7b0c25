"""What a player does between two frames: pace to real time, step on command, show progress.

:class:`FrameControl` is called before each frame, in-process (from the replay
clock) and over the bus (before each tick is sent). Frames before the window's
start are a seek: never paced, stepped or slowed. Real-time pacing anchors
mission time to the wall clock at the window's first frame and re-anchors after
each step pause, so a pause does not make the frames after it rush.

A :class:`Stepper` reads commands from a text stream: an empty line runs the
next frame, a number N runs N frames, ``c`` continues without stopping, ``q``
quits. A stream that ends, or a stream that is not a terminal and stays silent
for ``idle_timeout_s``, continues the replay: a CI job never hangs on it.
"""

from __future__ import annotations

import select
import sys
import time
from typing import IO, Protocol

from flightai.timebase import NS_PER_MS, NS_PER_S

_PROGRESS_EVERY_NS = 100 * NS_PER_MS  # wall time between two progress refreshes


class ProgressView(Protocol):
    """Where progress goes (a rich progress bar, or nothing)."""

    def update(self, t_ns: int, frames: int, speed: float) -> None:
        """Mission time reached, frames run and speed (multiple of real time) so far."""
        ...

    def close(self) -> None:
        """Leave the display."""
        ...


class RichProgress:
    """A rich progress bar: mission time, frames, speed.

    Args:
        end_ns: the mission time the replay ends at (the bar's total).
        label: shown at the left.
    """

    def __init__(self, end_ns: int, label: str = "replay") -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(),
            TextColumn("t {task.fields[t]:>8.2f} / {task.fields[end]:.2f} s"),
            TextColumn("{task.fields[frames]:>7d} frames"),
            TextColumn("{task.fields[speed]:>6.1f}x"), TimeElapsedColumn(),
            console=Console(stderr=True))
        self._task = self._progress.add_task(label, total=max(end_ns, 1), t=0.0,
                                             end=end_ns / NS_PER_S, frames=0, speed=0.0)
        self._progress.start()

    def update(self, t_ns: int, frames: int, speed: float) -> None:
        """Move the bar."""
        self._progress.update(self._task, completed=t_ns, t=t_ns / NS_PER_S, frames=frames,
                              speed=speed)

    def close(self) -> None:
        """Stop the live display (the last state stays on screen)."""
        self._progress.stop()


class Stepper:
    """Frame-by-frame control read from a text stream.

    Args:
        stream: where commands come from (default stdin).
        out: where prompts go (default stderr).
        idle_timeout_s: how long a stream that is not a terminal may stay silent
            before the replay continues on its own.
    """

    HELP = "Enter: next frame, N: run N frames, c: continue, q: quit"

    def __init__(self, stream: IO[str] | None = None, out: IO[str] | None = None,
                 idle_timeout_s: float = 5.0) -> None:
        self._stream = stream if stream is not None else sys.stdin
        self._out = out if out is not None else sys.stderr
        self._idle_timeout_s = idle_timeout_s
        self._remaining = 0
        self.free = False
        #: whether the last frame waited for the user (real-time pacing re-anchors there)
        self.waited = False

    def before_frame(self, t_ns: int, frames: int) -> bool:
        """Wait for the user's word before the frame at ``t_ns``; False to quit."""
        self.waited = False
        if self.free:
            return True
        if self._remaining > 0:
            self._remaining -= 1
            return True
        self.waited = True
        while True:
            print(f"[step] t = {t_ns / NS_PER_S:.3f} s, frame {frames}: "
                  "Enter/N/c/q> ", end="", file=self._out, flush=True)
            line = self._readline()
            if line is None:
                print("\n[step] no more input: continuing", file=self._out, flush=True)
                self.free = True
                return True
            word = line.strip().lower()
            if word == "":
                return True
            if word == "c":
                self.free = True
                return True
            if word == "q":
                return False
            if word.isdigit() and int(word) > 0:
                self._remaining = int(word) - 1
                return True
            print(f"[step] {word!r}? {self.HELP}", file=self._out, flush=True)

    def _readline(self) -> str | None:
        """The next line, or None at the end of the stream or after a silent non-terminal."""
        stream = self._stream
        try:
            fileno = stream.fileno()
        except (AttributeError, OSError, ValueError):
            fileno = None
        if fileno is not None and not stream.isatty():
            ready, _, _ = select.select([fileno], [], [], self._idle_timeout_s)
            if not ready:
                return None
        line = stream.readline()
        return line if line else None


class FrameControl:
    """Progress, real-time pacing and stepping, consulted before each frame.

    Args:
        frame_ns: the minor frame.
        start_ns: the window's first instant: earlier frames are a seek.
        end_ns: the instant the replay stops at (excluded).
        rate: real time multiplied by this (``None``: as fast as possible).
        stepper: frame-by-frame control, or None.
        progress: the progress display, or None.
    """

    def __init__(self, frame_ns: int, start_ns: int, end_ns: int, *, rate: float | None = None,
                 stepper: Stepper | None = None, progress: ProgressView | None = None) -> None:
        if rate is not None and not rate > 0:
            raise ValueError(f"rate: expected a number above 0, got {rate}")
        self._frame_ns = frame_ns
        self.start_ns = start_ns
        self.end_ns = end_ns
        self._rate = rate
        self._stepper = stepper
        self._progress = progress
        self._anchor: tuple[int, int] | None = None  # (mission ns, wall ns) of pacing
        self._wall_start_ns = 0  # set at the first frame: loading the tasks is not replay time
        self._next_refresh_ns = 0
        self.frames = 0
        self.quit = False
        #: wall ns the paced frames were late, at most (real time only)
        self.max_lag_ns = 0

    @property
    def unpaced(self) -> bool:
        """Neither paced nor stepped: frames may follow each other as fast as they can."""
        return self._rate is None and self._stepper is None

    @property
    def passive(self) -> bool:
        """Nothing to do between frames but count them."""
        return self._rate is None and self._stepper is None and self._progress is None

    def before_frame(self, t_ns: int) -> bool:
        """Called before the frame at ``t_ns``; False when the user quit."""
        if self._progress is not None:
            now = time.perf_counter_ns()
            if not self._wall_start_ns:
                self._wall_start_ns = now
            if now >= self._next_refresh_ns:
                self._next_refresh_ns = now + _PROGRESS_EVERY_NS
                self._progress.update(t_ns, self.frames, self._speed(t_ns, now))
        if t_ns >= self.start_ns:
            if self._stepper is not None and not self._stepper.before_frame(t_ns, self.frames):
                self.quit = True
                return False
            if self._rate is not None:
                self._pace(t_ns)
        self.frames += 1
        return True

    def _pace(self, t_ns: int) -> None:
        """Sleep until the wall time of ``t_ns`` (re-anchored after a step pause)."""
        assert self._rate is not None
        now = time.monotonic_ns()
        paused = self._stepper is not None and self._stepper.waited
        if self._anchor is None or paused:
            self._anchor = (t_ns, now)
            return
        t0, wall0 = self._anchor
        target = wall0 + int((t_ns - t0) / self._rate)
        if target > now:
            time.sleep((target - now) / NS_PER_S)
        else:
            self.max_lag_ns = max(self.max_lag_ns, now - target)

    def _speed(self, t_ns: int, now_ns: int) -> float:
        wall_ns = now_ns - self._wall_start_ns
        return t_ns / wall_ns if self._wall_start_ns and wall_ns > 0 else 0.0

    def close(self) -> None:
        """Final progress update, then leave the display."""
        if self._progress is not None:
            now = time.perf_counter_ns()
            t_ns = self.frames * self._frame_ns
            self._progress.update(t_ns, self.frames, self._speed(t_ns, now))
            self._progress.close()
