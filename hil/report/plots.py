"""The report's figures, drawn with matplotlib's Agg backend into PNG bytes.

Each figure reads only what the recording holds: a figure whose streams are
absent is left out (``None``) and the report says so. Signal names are the
LTD-1 ones (``docs/ltd1.md``) and the ground-truth channels (``hil.verdict.truth``).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from flightai.timebase import NS_PER_S
from hil.verdict.streams import EVENT_TOPIC, HEALTH_TOPIC, Streams
from hil.verdict.truth import STATE_TOPIC

Series = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]
"""(t in s, values [n, ...])."""
NAV = ("out.nav", "nav.state")
THRUST = ("out.command", "thrust.cmd")
_DPI = 90


def array_series(streams: Streams, topic: str, array: str) -> Series | None:
    """Times (s) and stacked values of one array of a topic, or None if absent."""
    times, values = [], []
    for message in streams.messages(topic):
        arrays = dict(message.arrays)
        if array in arrays:
            times.append(message.t_ns / NS_PER_S)
            values.append(np.asarray(arrays[array], np.float64).reshape(-1))
    if not times:
        return None
    return np.array(times), np.stack(values)


def health_series(streams: Streams, pick: Callable[[dict[str, Any]], dict[str, float]]
                  ) -> dict[str, Series]:
    """Per key, the values ``pick(health map)`` gives over time (keys may come and go)."""
    rows: dict[str, tuple[list[float], list[float]]] = {}
    for message in streams.messages(HEALTH_TOPIC):
        health = message.fields.get("health")
        if not isinstance(health, dict):
            continue
        for key, value in pick(health).items():
            t, v = rows.setdefault(key, ([], []))
            t.append(message.t_ns / NS_PER_S)
            v.append(float(value))
    return {k: (np.array(t), np.array(v)) for k, (t, v) in rows.items()}


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=_DPI)
    plt.close(figure)
    return buffer.getvalue()


def trajectory(streams: Streams) -> bytes | None:
    """Ground track (x, y) and altitude against downrange, truth and onboard estimate."""
    truth = array_series(streams, STATE_TOPIC, "r_m")
    nav = array_series(streams, *NAV)
    if truth is None and nav is None:
        return None
    figure, (track, profile) = plt.subplots(1, 2, figsize=(11, 4.2))
    for series, label, style in ((truth, "truth", "-"), (nav, "onboard estimate", "--")):
        if series is not None:
            r = series[1]
            track.plot(r[:, 0], r[:, 1], style, label=label)
            profile.plot(r[:, 0], r[:, 2], style, label=label)
    track.plot([0], [0], "k+", markersize=12, label="target")
    track.set(title="ground track", xlabel="x downrange (m)", ylabel="y crossrange (m)")
    profile.set(title="altitude profile", xlabel="x downrange (m)", ylabel="z altitude (m)")
    for axes in (track, profile):
        axes.grid(True, alpha=0.3)
        axes.legend()
    return _png(figure)


def altitude_velocity(streams: Streams) -> bytes | None:
    """Altitude and velocity components against mission time."""
    truth_r = array_series(streams, STATE_TOPIC, "r_m")
    truth_v = array_series(streams, STATE_TOPIC, "v_mps")
    nav = array_series(streams, *NAV)
    if truth_r is None and nav is None:
        return None
    figure, (alt, vel) = plt.subplots(1, 2, figsize=(11, 4.2))
    if truth_r is not None:
        alt.plot(truth_r[0], truth_r[1][:, 2], label="truth z")
    if nav is not None:
        alt.plot(nav[0], nav[1][:, 2], "--", label="estimate z")
        alt.plot(nav[0], nav[1][:, 9], ":", label="estimate AGL")
    for series, style, who in ((truth_v, "-", "truth"), (nav, "--", "estimate")):
        if series is not None:
            offset = 0 if series is truth_v else 3
            for axis, name in enumerate("xyz"):
                vel.plot(series[0], series[1][:, offset + axis], style, color=f"C{axis}",
                         label=f"{who} v{name}")
    alt.set(title="altitude", xlabel="mission time (s)", ylabel="m")
    vel.set(title="velocity", xlabel="mission time (s)", ylabel="m/s")
    for axes in (alt, vel):
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small")
    return _png(figure)


def thrust(streams: Streams) -> bytes | None:
    """The thrust commands published (N, landing frame) and their magnitude."""
    series = array_series(streams, *THRUST)
    if series is None:
        return None
    t, f = series
    figure, axes = plt.subplots(figsize=(11, 3.8))
    for axis, name in enumerate("xyz"):
        axes.plot(t, f[:, axis], label=f"T{name}")
    axes.plot(t, np.linalg.norm(f, axis=1), "k", linewidth=1, label="|T|")
    axes.set(title=f"{THRUST[1]} ({THRUST[0]})", xlabel="mission time (s)", ylabel="N")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small")
    return _png(figure)


def task_timing(streams: Streams) -> bytes | None:
    """Per task, the execution time p99 and max from health telemetry (wall time, us)."""
    def pick(stat: str) -> Callable[[dict[str, Any]], dict[str, float]]:
        return lambda h: {name: t.get(stat, 0) / 1e3 for name, t in
                          (h.get("tasks") or {}).items() if isinstance(t, dict)}

    p99, worst = health_series(streams, pick("wall_exec_p99_ns")), \
        health_series(streams, pick("wall_exec_max_ns"))
    if not p99:
        return None
    figure, axes = plt.subplots(figsize=(11, 4.2))
    for i, (name, (t, v)) in enumerate(sorted(p99.items())):
        color = f"C{i % 10}"
        axes.plot(t, v, color=color, label=f"{name} p99")
        if name in worst:
            axes.plot(*worst[name], ":", color=color, label=f"{name} max")
    axes.set_yscale("log")
    axes.set(title="task execution time (health telemetry, wall time)",
             xlabel="mission time (s)", ylabel="us")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small", ncol=2)
    return _png(figure)


def counters(streams: Streams) -> bytes | None:
    """Rejects by reason and overruns by task; events raised, suppressed and published.

    Two panels, as event counts run to thousands where rejects are a handful.
    """
    faults: dict[str, Series] = {}
    faults.update({f"rejects {k}": s for k, s in health_series(
        streams, lambda h: dict(h.get("rejects") or {})).items()})
    faults.update({f"bus rejects {k}": s for k, s in health_series(
        streams, lambda h: dict((h.get("bus") or {}).get("rejects") or {})).items()})
    faults.update({f"overruns {k}": s for k, s in health_series(
        streams, lambda h: {n: t.get("overruns", 0) for n, t in (h.get("tasks") or {}).items()
                            if isinstance(t, dict)}).items()})
    events = health_series(streams, lambda h: {
        "events raised": h.get("events", 0), "events suppressed": h.get("events_suppressed", 0),
        "frame slips": h.get("frame_slips", 0)})
    if not faults and not events:
        return None
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for axes, series in ((left, faults), (right, events)):
        for label, (t, v) in sorted(series.items()):
            axes.step(t, v, where="post", label=label)
    published = [m.t_ns / NS_PER_S for m in streams.messages(EVENT_TOPIC)]
    if published:
        right.plot(published, np.zeros(len(published)), "rv", label="event published")
    highest = max((float(v.max()) for _, v in faults.values() if v.size), default=0.0)
    left.set_ylim(-0.05 * max(highest, 1.0), 1.1 * max(highest, 1.0))  # counts are >= 0
    left.set(title="rejects and overruns", xlabel="mission time (s)", ylabel="count")
    right.set(title="events and frame slips", xlabel="mission time (s)", ylabel="count")
    for axes in (left, right):
        axes.grid(True, alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize="small", ncol=2)
    figure.suptitle("cumulative health counters")
    return _png(figure)


FIGURES: tuple[tuple[str, str, Callable[[Streams], bytes | None]], ...] = (
    ("trajectory", "Trajectory", trajectory),
    ("altitude-velocity", "Altitude and velocity", altitude_velocity),
    ("thrust", "Thrust commands", thrust),
    ("task-timing", "Task timing", task_timing),
    ("counters", "Rejects and counters", counters),
)
"""(anchor, title, draw) of every figure, in report order."""
