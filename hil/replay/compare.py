"""Compare two publication streams: bit for bit, or within per-signal tolerances.

Publications are matched by (instant, task); each task publishes at most once
per instant. A matched pair agrees when its status, release instant, signal
names, dtypes and shapes are the same and every value is bit-identical (or,
with tolerances, within ``abs + rel * |recorded|``, NaN matching NaN). The
first divergence in time order is reported with the element that differs, and
every pair feeds the summary statistics.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from flightai.bus.outbound import OUTPUT_PREFIX
from flightai.sched.io import Publication
from hil.record.reader import Recording
from hil.record.recorder import FROM_RUNTIME

Key = tuple[int, str]
"""A publication's instant (``t_ns``) and task."""


@dataclass(frozen=True)
class Tolerance:
    """How far a replayed value may be from the recorded one: ``abs + rel * |recorded|``."""

    abs: float = 0.0
    rel: float = 0.0

    @classmethod
    def parse(cls, item: str) -> tuple[str, Tolerance]:
        """``SIGNAL=ABS`` or ``SIGNAL=ABS,REL`` (``*`` for every other signal).

        Raises:
            ValueError: not of that form.
        """
        signal, sep, values = item.partition("=")
        parts = values.split(",")
        if not sep or not signal or not 1 <= len(parts) <= 2:
            raise ValueError(f"{item!r}: expected SIGNAL=ABS or SIGNAL=ABS,REL")
        return signal, cls(*(float(p) for p in parts))


@dataclass(frozen=True)
class Divergence:
    """Where two streams first disagree.

    Attributes:
        t_ns: the publication instant.
        task: the publishing task.
        what: ``value``, ``status``, ``t_release_ns``, ``signals``, ``dtype``,
            ``shape``, ``missing`` (recorded, not replayed) or ``extra``.
        signal: the output signal ('' when the whole publication differs).
        index: the element's multi-dimensional index (``value`` only).
        recorded: the recorded value (element, field or description).
        replayed: the replayed one.
    """

    t_ns: int
    task: str
    what: str
    signal: str = ""
    index: tuple[int, ...] = ()
    recorded: Any = None
    replayed: Any = None

    def describe(self) -> str:
        """One line for a person."""
        where = f"t = {self.t_ns} ns, task {self.task!r}"
        if self.what in ("missing", "extra"):
            return f"{where}: publication {self.what} in the replay"
        target = f"signal {self.signal!r}" + (f" element {list(self.index)}"
                                              if self.what == "value" else "")
        return (f"{where}, {target}: {self.what} recorded {self.recorded!r}, "
                f"replayed {self.replayed!r}")


@dataclass
class Comparison:
    """The verdict and statistics of one comparison.

    Attributes:
        bit_exact: whether bit identity was required.
        compared: publication pairs compared.
        equal: pairs bit-identical.
        within: pairs not identical but within tolerance.
        missing: recorded publications the other stream lacks.
        extra: publications only in the other stream.
        max_abs_diff: per signal, the largest absolute difference seen.
        first: the first divergence, or None.
    """

    bit_exact: bool
    compared: int = 0
    equal: int = 0
    within: int = 0
    missing: int = 0
    extra: int = 0
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    first: Divergence | None = None

    @property
    def verdict(self) -> str:
        """``identical``, ``within tolerance`` or ``DIVERGED``."""
        if self.first is not None:
            return "DIVERGED"
        return "identical" if self.within == 0 else "within tolerance"

    @property
    def ok(self) -> bool:
        """No divergence."""
        return self.first is None

    def summary(self) -> str:
        """A few lines for a person: verdict, first divergence, statistics."""
        mode = "bit-exact" if self.bit_exact else "tolerances"
        lines = [f"{self.verdict} ({mode}): {self.compared} publications compared, "
                 f"{self.equal} identical, {self.within} within tolerance, "
                 f"{self.missing} missing, {self.extra} extra"]
        if self.first is not None:
            lines.append(f"  first divergence: {self.first.describe()}")
        lines += [f"  max |diff| {signal}: {diff:.6g}"
                  for signal, diff in sorted(self.max_abs_diff.items()) if diff > 0]
        return "\n".join(lines)


def recorded_publications(recording: Recording) -> list[Publication]:
    """The ``out.*`` messages a runtime published, as publications, in recorded order."""
    publications = []
    for recorded in recording.messages:
        if recorded.direction == FROM_RUNTIME and recorded.topic.startswith(OUTPUT_PREFIX):
            message = recorded.decode()
            fields = message.fields
            publications.append(Publication(
                message.t_ns, str(fields["task"]), int(fields["t_release_ns"]),
                tuple(message.arrays), str(fields["status"])))
    return publications


def compare(recorded: Sequence[Publication], replayed: Sequence[Publication], *,
            bit_exact: bool = True,
            tolerances: Mapping[str, Tolerance] | None = None) -> Comparison:
    """Compare a replayed (or second) stream with a recorded one.

    Args:
        recorded: the reference publications.
        replayed: the publications to check.
        bit_exact: require identical bytes (same platform); otherwise values within
            ``tolerances`` pass.
        tolerances: per signal (``*``: every other signal); signals without one
            must be identical.
    """
    result = Comparison(bit_exact)
    tolerances = {} if bit_exact else dict(tolerances or {})
    ours = {(p.t_ns, p.task): p for p in recorded}
    theirs = {(p.t_ns, p.task): p for p in replayed}
    for key in _in_order(recorded, replayed, theirs.keys() - ours.keys()):
        mine, other = ours.get(key), theirs.get(key)
        if other is None or mine is None:
            result.missing += other is None
            result.extra += mine is None
            _note(result, Divergence(*key, "missing" if other is None else "extra"))
            continue
        result.compared += 1
        divergence, identical = _compare_pair(mine, other, tolerances, result.max_abs_diff)
        if divergence is not None:
            _note(result, divergence)
        elif identical:
            result.equal += 1
        else:
            result.within += 1
    return result


def _in_order(recorded: Sequence[Publication], replayed: Sequence[Publication],
              extra: Iterable[Key]) -> list[Key]:
    """Every key, in time order; within an instant the recorded order, then the extras."""
    extra = set(extra)
    keys = [(p.t_ns, p.task) for p in recorded]
    keys += [(p.t_ns, p.task) for p in replayed if (p.t_ns, p.task) in extra]
    return sorted(dict.fromkeys(keys), key=lambda k: k[0])


def _note(result: Comparison, divergence: Divergence) -> None:
    if result.first is None:
        result.first = divergence


def _compare_pair(mine: Publication, other: Publication, tolerances: Mapping[str, Tolerance],
                  max_abs_diff: dict[str, float]) -> tuple[Divergence | None, bool]:
    """The first difference of one pair (or None), and whether the pair is bit-identical."""
    key = (mine.t_ns, mine.task)
    for what in ("status", "t_release_ns"):
        if getattr(mine, what) != getattr(other, what):
            return Divergence(*key, what, "", (), getattr(mine, what),
                              getattr(other, what)), False
    names = [s for s, _ in mine.outputs]
    if names != [s for s, _ in other.outputs]:
        return Divergence(*key, "signals", "", (), names, [s for s, _ in other.outputs]), False
    identical = True
    first: Divergence | None = None
    for (signal, a), (_, b) in zip(mine.outputs, other.outputs, strict=True):
        for what in ("dtype", "shape"):
            if getattr(a, what) != getattr(b, what):
                return Divergence(*key, what, signal, (), str(getattr(a, what)),
                                  str(getattr(b, what))), False
        if a.tobytes() == b.tobytes():
            max_abs_diff.setdefault(signal, 0.0)
            continue
        identical = False
        diff = _abs_diff(a, b)
        max_abs_diff[signal] = max(max_abs_diff.get(signal, 0.0), float(np.nanmax(diff)))
        bad = _out_of_tolerance(a, b, tolerances.get(signal, tolerances.get("*")))
        if first is None and bad.any():
            index = tuple(int(i) for i in np.unravel_index(int(np.flatnonzero(bad)[0]), a.shape))
            first = Divergence(*key, "value", signal, index, a[index].item(), b[index].item())
    return first, identical


def _abs_diff(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Element-wise |a - b| in float64 (0 where both are the same NaN or infinity)."""
    x, y = a.astype(np.float64), b.astype(np.float64)
    with np.errstate(invalid="ignore"):
        diff = np.abs(x - y)
    same = (x == y) | (np.isnan(x) & np.isnan(y))
    return np.where(same, 0.0, np.where(np.isnan(diff), np.inf, diff))


def _out_of_tolerance(a: npt.NDArray[Any], b: npt.NDArray[Any],
                      tolerance: Tolerance | None) -> npt.NDArray[np.bool_]:
    """Elements of ``b`` that differ from ``a`` beyond the tolerance (bits, without one)."""
    if tolerance is None:
        flat_a = np.ascontiguousarray(a).reshape(-1).view(np.uint8).reshape(a.size, -1)
        flat_b = np.ascontiguousarray(b).reshape(-1).view(np.uint8).reshape(b.size, -1)
        differs: npt.NDArray[np.bool_] = (flat_a != flat_b).any(axis=1).reshape(a.shape)
        return differs
    close = np.isclose(b.astype(np.float64), a.astype(np.float64), rtol=tolerance.rel,
                       atol=tolerance.abs, equal_nan=True)
    far: npt.NDArray[np.bool_] = np.logical_not(close)
    return far
