"""Evaluate a verdict set over a recording: each check passes or fails, with a reason.

A reason names what decided it: the mission time, the topic, the element or
key, the value and the bound. A check that cannot be judged (a window whose
instant never came, a stream with no samples, a missing array) fails and says
why: a verdict never passes for want of data.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from hil.record.reader import Recording
from hil.verdict.spec import CONFIGURED, HARD_TASKS, Check, VerdictSet
from hil.verdict.streams import (
    HEALTH_TOPIC,
    Event,
    Sample,
    SelectionError,
    Streams,
    fmt_t,
    violation,
)

SAFE_ENTERED = "safe_entered"
_SAFE_CAUSES = (("external clock tick timeout", "tick_timeout"),
                ("guard trip on ", "guard_trip"), (" consecutive overruns of ", "overrun"),
                ("fallback engaged on ", "fallback_engaged"), ("by command", "command"))
"""``safe_entered`` detail text (``flightai.sched.executive``) -> the trigger it names."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check.

    Attributes:
        check: the check.
        passed: it holds.
        reason: why, naming time, topic, element and values.
        wall_s: time taken to evaluate it (wall time, for the JUnit report).
    """

    check: Check
    passed: bool
    reason: str
    wall_s: float = 0.0


class _Fail(Exception):
    """Ends a check with a failure reason."""


def evaluate(verdicts: VerdictSet, recording: Recording | Streams) -> list[CheckResult]:
    """Every check of ``verdicts`` over ``recording``, in file order."""
    streams = recording if isinstance(recording, Streams) else Streams(recording)
    results = []
    for check in verdicts.checks:
        wall_start = time.perf_counter()
        try:
            passed, reason = _KINDS[check.kind](check, streams, verdicts)
        except (_Fail, SelectionError) as exc:
            passed, reason = False, str(exc)
        results.append(CheckResult(check, passed, reason, time.perf_counter() - wall_start))
    return results


def _window(check: Check, streams: Streams, verdicts: VerdictSet) -> tuple[int, int]:
    bounds = []
    for ref in check.window:
        t_ns = streams.resolve(ref, dict(verdicts.instants))
        if t_ns is None:
            raise _Fail(f"the window's instant {ref.instant!r} never happened")
        bounds.append(t_ns)
    return bounds[0], bounds[1]


def _span(lo: int, hi: int) -> str:
    return f"from {lo / 1e9:.3f} s to {hi / 1e9:.3f} s"


def _samples(check: Check, streams: Streams, lo: int | None, hi: int | None
             ) -> dict[str, list[Sample]]:
    assert check.selector is not None
    series = streams.series(check.selector, lo, hi)
    if not series:
        where = (f"{check.selector.array}" if check.selector.array
                 else ".".join(check.selector.field))
        window = "" if lo is None or hi is None else f" {_span(lo, hi)}"
        raise _Fail(f"no samples of {check.selector.topic} {where}{window}")
    return series


def _always(check: Check, streams: Streams, verdicts: VerdictSet) -> tuple[bool, str]:
    lo, hi = _window(check, streams, verdicts)
    series = _samples(check, streams, lo, hi)
    assert check.condition is not None and check.selector is not None
    bad = sorted((t, label, v, why) for label, samples in series.items() for t, v in samples
                 if (why := violation(v, check.condition)) is not None)
    n = sum(len(s) for s in series.values())
    topic, cond = check.selector.topic, check.condition.describe()
    if bad:
        t, label, value, why = bad[0]
        return False, (f"{fmt_t(t)}: {topic} {label} = {_v(value)}: {why} (must always be "
                       f"{cond} {_span(lo, hi)}); {len(bad)} of {n} samples violate it")
    return True, f"{n} samples of {topic} {_labels(series)} {_span(lo, hi)}: all {cond}" \
                 f"{_range(series)}"


def _eventually(check: Check, streams: Streams, verdicts: VerdictSet) -> tuple[bool, str]:
    lo, hi = _window(check, streams, verdicts)
    series = _samples(check, streams, lo, hi)
    assert check.condition is not None and check.selector is not None
    topic, cond = check.selector.topic, check.condition.describe()
    good = sorted((t, label, v) for label, samples in series.items() for t, v in samples
                  if violation(v, check.condition) is None)
    if good:
        t, label, value = good[0]
        return True, f"{fmt_t(t)}: {topic} {label} = {_v(value)} ({cond})"
    n = sum(len(s) for s in series.values())
    return False, (f"{topic} {_labels(series)} never {cond} {_span(lo, hi)} ({n} samples"
                   f"{_range(series)})")


def _at(check: Check, streams: Streams, verdicts: VerdictSet) -> tuple[bool, str]:
    assert check.at is not None and check.condition is not None and check.selector is not None
    t_at = streams.resolve(check.at, dict(verdicts.instants))
    if t_at is None:
        return False, f"instant {check.at.instant!r} never happened"
    series = _samples(check, streams, None, t_at)
    topic, cond = check.selector.topic, check.condition.describe()
    outcomes = []
    for label, samples in sorted(series.items()):
        t, value = samples[-1]
        why = violation(value, check.condition)
        where = f"at {check.at.describe()} ({fmt_t(t_at)}): {topic} {label} = {_v(value)}" \
                + ("" if t == t_at else f" (sample of {fmt_t(t)})")
        if why is not None:
            return False, f"{where}: {why} (must be {cond})"
        outcomes.append(where)
    return True, "; ".join(outcomes) + f" ({cond})"


def _finite(check: Check, streams: Streams, verdicts: VerdictSet) -> tuple[bool, str]:
    lo, hi = _window(check, streams, verdicts)
    assert check.selector is not None
    prefix, direction = check.selector.topic, check.selector.direction
    messages = values = bad = 0
    first: tuple[int, str] | None = None
    for topic in (t for t in streams.topics() if t.startswith(prefix)):
        for message in streams.messages(topic, direction):
            if not lo <= message.t_ns <= hi:
                continue
            messages += 1
            for name, array in message.arrays:
                if array.dtype.kind not in "fc":
                    continue
                values += array.size
                ok = np.isfinite(array)
                if ok.all():
                    continue
                bad += int(array.size - np.count_nonzero(ok))
                index = tuple(int(i) for i in np.argwhere(~ok)[0])
                where = (message.t_ns, f"{fmt_t(message.t_ns)}: {topic} {name}{list(index)} = "
                         f"{array[index]!r}")
                first = min(first, where) if first is not None else where
    if messages == 0:
        return False, f"no messages on topics starting with {prefix!r} {_span(lo, hi)}"
    if first is not None:
        return False, f"{first[1]}: not finite; {bad} non-finite of {values} values"
    return True, f"{values} values in {messages} messages on {prefix}* {_span(lo, hi)}: all finite"


def _counter(check: Check, streams: Streams, verdicts: VerdictSet) -> tuple[bool, str]:
    lo, hi = _window(check, streams, verdicts)
    assert check.selector is not None
    field = check.selector.field
    if not streams.messages(check.selector.topic):
        return False, f"no {check.selector.topic} messages"
    series = streams.series(check.selector, None, hi)
    series = {label: s for label, s in series.items() if _kept(check, streams, label)}
    if not series and "*" not in field:
        return False, f"no field {'.'.join(field)} in {check.selector.topic} messages"
    counts = {label: _increase(samples, lo) for label, samples in series.items()}
    first = min((c[1] for c in counts.values() if c[1] is not None), default=None)
    span = _span(lo, hi)
    if check.total:
        total = sum(c[0] for c in counts.values())
        per_key = ", ".join(f"{k}: {c[0]}" for k, c in sorted(counts.items()) if c[0])
        text = f"{'.'.join(field)} summed: {total} {span} (max {check.limit})" \
               + (f" [{per_key}]" if per_key else "")
        if total > check.limit:
            return False, text + (f"; first increase {first[1]}" if first else "")
        return True, text
    over = {k: c for k, c in sorted(counts.items()) if c[0] > check.limit}
    if over:
        label, (n, where) = next(iter(over.items()))
        more = f"; also {', '.join(f'{k}: {c[0]}' for k, c in list(over.items())[1:])}" \
            if len(over) > 1 else ""
        return False, (f"{check.selector.topic} {label} rose by {n} {span} (max "
                       f"{check.limit}): first increase {where[1] if where else '?'}{more}")
    return True, (f"{len(counts)} counters ({_labels(counts) or 'no keys'}) each at most "
                  f"{check.limit} {span}")


def _kept(check: Check, streams: Streams, label: str) -> bool:
    """Whether a wildcard key passes ``include`` and ``exclude``."""
    assert check.selector is not None
    if "*" not in check.selector.field:
        return True
    key = label.split(".")[check.selector.field.index("*")]
    include = set(check.include)
    if HARD_TASKS in include:
        from hil.ltd1.loop import hard_tasks

        include = set(hard_tasks(streams.config()))
    return (not include or key in include) and key not in check.exclude


def _increase(samples: Sequence[Sample], lo: int) -> tuple[int, tuple[int, str] | None]:
    """How much a counter rose from ``lo`` on (a drop is a reset), and the first rise."""
    before = [v for t, v in samples if t < lo]
    previous = float(before[-1]) if before else 0.0
    total = 0.0
    first: tuple[int, str] | None = None
    for t, value in samples:
        if t < lo:
            continue
        value = float(value)
        rise = value - previous if value >= previous else value
        if rise > 0 and first is None:
            first = (t, f"at {fmt_t(t)}: {_v(previous)} -> {_v(value)}")
        total += rise
        previous = value
    return int(total), first


def _safe_entry(check: Check, streams: Streams, verdicts: VerdictSet) -> tuple[bool, str]:
    lo, hi = _window(check, streams, verdicts)
    allowed = _allowed_triggers(check, streams)
    health = [m for m in streams.messages(HEALTH_TOPIC) if lo <= m.t_ns <= hi]
    if not health:
        return False, f"no health messages {_span(lo, hi)}: the mode is unknown"
    events = streams.events
    entries = [(i, e) for i, e in enumerate(events) if e.kind == SAFE_ENTERED
               and lo <= e.t_ns <= hi]
    for i, entry in entries:
        cause = next((kind for text, kind in _SAFE_CAUSES if text in entry.detail), "unknown")
        if cause not in allowed:
            return False, (f"{fmt_t(entry.t_ns)}: SAFE entered ({entry.detail!r}): cause {cause} "
                           f"is not an allowed trigger ({', '.join(sorted(allowed)) or 'none'})")
        since = entry.t_ns - round(check.within_s * 1e9)
        if cause != "command" and not any(e.kind == cause and e.t_ns >= since
                                          for e in events[:i]):
            return False, (f"{fmt_t(entry.t_ns)}: SAFE entered ({entry.detail!r}) with no "
                           f"{cause} event in the {check.within_s:g} s before it")
    every_entry = [e for e in events if e.kind == SAFE_ENTERED]
    previous_t, previous_mode = None, None
    for message in streams.messages(HEALTH_TOPIC):  # from the start: the mode before lo
        mode = message.fields.get("health", {}).get("mode")
        if (lo <= message.t_ns <= hi and mode == "SAFE" and previous_mode != "SAFE"
                and not any((previous_t is None or e.t_ns > previous_t)
                            and e.t_ns <= message.t_ns for e in every_entry)):
            return False, (f"{fmt_t(message.t_ns)}: health mode SAFE (was {previous_mode}) with "
                           "no safe_entered event recorded since the previous health message")
        previous_t, previous_mode = message.t_ns, mode
    if not entries:
        return True, f"SAFE never entered {_span(lo, hi)} ({len(health)} health messages)"
    return True, "; ".join(f"{fmt_t(e.t_ns)}: SAFE entered on an allowed trigger "
                           f"({e.detail!r})" for _, e in entries)


def _allowed_triggers(check: Check, streams: Streams) -> set[str]:
    allowed = set(check.triggers) - {CONFIGURED}
    if CONFIGURED in check.triggers:
        safe = streams.config().safe
        allowed |= {kind for kind, on in (
            ("fallback_engaged", safe.on_fallback), ("guard_trip", safe.on_guard_trip),
            ("tick_timeout", safe.on_tick_timeout),
            ("overrun", safe.after_consecutive_overruns > 0)) if on}
    return allowed


def _events(check: Check, streams: Streams, verdicts: VerdictSet) -> tuple[bool, str]:
    lo, hi = _window(check, streams, verdicts)
    counted: list[Event] = [
        e for e in streams.events if lo <= e.t_ns <= hi
        and (not check.severities or e.severity in check.severities)
        and (not check.kinds or e.kind in check.kinds) and e.kind not in check.excepted]
    what = " ".join(filter(None, ["/".join(check.severities), "/".join(check.kinds)])) or "any"
    if check.excepted:
        what += f" (except {', '.join(check.excepted)})"
    text = f"{len(counted)} {what} events {_span(lo, hi)} (max {check.limit})"
    if len(counted) > check.limit:
        return False, text + ": " + "; ".join(e.describe() for e in counted[:3]) \
            + ("; ..." if len(counted) > 3 else "")
    return True, text


_KINDS: dict[str, Callable[[Check, Streams, VerdictSet], tuple[bool, str]]] = {
    "always": _always, "eventually": _eventually, "at": _at, "finite": _finite,
    "counter": _counter, "safe_entry": _safe_entry, "events": _events}


def _v(value: object) -> str:
    if isinstance(value, float):
        return f"{int(value)}" if value.is_integer() and abs(value) < 1e15 else f"{value:.6g}"
    return repr(value)


def _labels(series: Mapping[str, object]) -> str:
    labels = sorted(series)
    return ", ".join(labels[:4]) + (f" (+{len(labels) - 4})" if len(labels) > 4 else "")


def _range(series: dict[str, list[Sample]]) -> str:
    values = [v for s in series.values() for _, v in s
              if isinstance(v, float) and math.isfinite(v)]
    return f", range [{_v(min(values))}, {_v(max(values))}]" if values else ""
