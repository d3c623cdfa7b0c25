"""What happens at a deadline when a job overran or its outputs tripped a guard."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from flightai.config.schema import Policy
from flightai.sched.task import Arrays


@dataclass(frozen=True)
class Resolution:
    """A policy's answer: what to publish (None: nothing) and whether to latch the fallback."""

    outputs: Arrays | None
    status: str
    engage_fallback: bool = False


class OverrunPolicy(Protocol):
    """Decides the publication that replaces a job's missing or refused outputs."""

    def resolve(self, last: Arrays, run_fallback: Callable[[], Arrays | None]) -> Resolution:
        """``last`` are the outputs last published; ``run_fallback`` runs the fallback task."""
        ...


class HoldPolicy:
    """Publish the last outputs again (flagged ``held``)."""

    def resolve(self, last: Arrays, run_fallback: Callable[[], Arrays | None]) -> Resolution:
        """Repeat ``last``."""
        return Resolution(last, "held")


class SkipPolicy:
    """Publish nothing at this deadline; consumers keep the older value and its time."""

    def resolve(self, last: Arrays, run_fallback: Callable[[], Arrays | None]) -> Resolution:
        """Publish nothing."""
        return Resolution(None, "skipped")


class FallbackPolicy:
    """Run the fallback task now on the same input snapshot, and latch onto it."""

    def resolve(self, last: Arrays, run_fallback: Callable[[], Arrays | None]) -> Resolution:
        """Publish the fallback's outputs; hold when the fallback fails too."""
        outputs = run_fallback()
        if outputs is None:
            return Resolution(last, "held", engage_fallback=True)
        return Resolution(outputs, "fallback", engage_fallback=True)


POLICIES: dict[Policy, OverrunPolicy] = {
    Policy.HOLD: HoldPolicy(),
    Policy.SKIP: SkipPolicy(),
    Policy.FALLBACK: FallbackPolicy(),
}
