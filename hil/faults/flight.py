"""One LTD-1 descent in-process with a fault plan applied (the fast-clock twin of the bench).

The plant's samples go through the :class:`~hil.faults.injector.Injector`,
are encoded, faulted on the wire, and decoded and checked by the runtime's own
:class:`~flightai.bus.inbound.InboundChecks`, then handed over per frame in
(time, arrival) order as :class:`~flightai.bus.inbound.BusInput` does; model
faults go to the executive as injected jobs. So a plan flown here publishes
what it publishes through ``flightai demo --faults`` over the real bus.
"""

from __future__ import annotations

import bisect
import operator
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flightai.bus.inbound import InboundChecks
from flightai.config.loader import load_mission
from flightai.config.schema import BusConfig, MissionConfig
from flightai.runtime import build_executive, load_tasks
from flightai.sched.clock import FastClock
from flightai.sched.health import Event, Health
from flightai.sched.io import OutputSink, Publication, Sample
from hil.faults.injector import Injector
from hil.faults.log import Applied
from hil.faults.models import model_injections
from hil.faults.plan import FaultPlan
from hil.ltd1.constants import MAX_MISSION_NS
from hil.ltd1.criteria import FlightRecord
from hil.ltd1.dispersions import Case
from hil.ltd1.loop import Plant, hard_tasks
from hil.ltd1.sim import Simulator

_T_NS = operator.attrgetter("t_ns")


class WireSource:
    """The plant's samples as a faulty flight-software stub would send them to the bus.

    Args:
        plant: the simulated vehicle.
        injector: the sensor and transport faults.
        config: the mission (input signals, message size cap).
    """

    def __init__(self, plant: Plant, injector: Injector, config: MissionConfig) -> None:
        self._plant = plant
        self._injector = injector
        inputs = {s.name: s for s in config.signals if s.input}
        max_bytes = (config.bus or BusConfig()).max_message_bytes
        self.checks = InboundChecks(inputs, max_bytes)
        self._pending: list[Sample] = []

    def poll(self, t_ns: int) -> list[Sample]:
        """Send the frame's messages through the faults and the bus checks; the samples due."""
        pending = self._pending
        for frames in self._injector.messages_for(t_ns, self._plant.poll(t_ns)):
            message = self.checks.check(frames)
            if message is not None:
                pending.extend(Sample(message.topic, message.t_ns, value, immutable=True)
                               for _, value in message.arrays)
        pending.sort(key=_T_NS)  # stable: arrival order within an instant, as on the bus
        cut = bisect.bisect_right(pending, t_ns, key=_T_NS)
        ready, self._pending = pending[:cut], pending[cut:]
        return ready


class FiniteMonitor:
    """Counts publications carrying NaN or infinity, by signal (nothing else)."""

    def __init__(self) -> None:
        self.non_finite: Counter[str] = Counter()
        self.publications = 0

    def publish(self, publication: Publication) -> None:
        """Check every floating-point output."""
        self.publications += 1
        for signal, value in publication.outputs:
            if value.dtype.kind in "fc" and not np.isfinite(value).all():
                self.non_finite[signal] += 1

    def event(self, event: Event) -> None:
        """Events carry no values."""

    def frame_done(self, t_ns: int, health: Health) -> None:
        """Nothing per frame."""


@dataclass
class FaultedFlight:
    """What a faulted descent did.

    Attributes:
        record: the flight's record and success criteria (``hil.ltd1.criteria``).
        health: the runtime's health at the end (task counters, rejects, events).
        bus_rejects: messages the bus checks refused, by reason.
        sequence_gaps: messages missing from the topics' sequences (dropped).
        log: every fault applied, in time order.
        non_finite: publications carrying NaN or infinity, by signal.
        tasks: each task's ``describe()`` at the end (the nav filter's fix and
            altimeter counters).
        events: the events kept by the runtime.
    """

    record: FlightRecord
    health: Health
    bus_rejects: dict[str, int]
    sequence_gaps: int
    log: list[Applied]
    non_finite: dict[str, int]
    tasks: dict[str, dict[str, str]]
    events: list[Event] = field(default_factory=list)

    def events_of(self, kind: str) -> list[Event]:
        """The kept events of one kind."""
        return [e for e in self.events if e.kind == kind]


def fly_faulted(mission: Path | MissionConfig, case: Case, plan: FaultPlan, *,
                overrides: Sequence[str] = (), workers: int | None = None,
                duration_ns: int | None = None, sinks: Sequence[OutputSink] = ()
                ) -> FaultedFlight:
    """Fly one descent in-process on the fast clock with the plan's faults.

    Args:
        mission: the mission file (or a loaded config).
        case: the dispersed case (``draw_case(seed)``).
        plan: the fault plan.
        overrides: ``--set`` style mission overrides.
        workers: worker threads (results do not depend on it).
        duration_ns: stop at this mission time (default: touchdown or the limit).
        sinks: more sinks for the runtime's publications and events.
    """
    config = mission if isinstance(mission, MissionConfig) else load_mission(mission, overrides)
    horizon_ns = min(duration_ns or MAX_MISSION_NS, MAX_MISSION_NS)
    injections, model_log = model_injections(plan, config, horizon_ns)
    plant = Plant(Simulator(case))
    injector = Injector(plan, config)
    source = WireSource(plant, injector, config)
    monitor = FiniteMonitor()
    loaded = load_tasks(config)
    executive = build_executive(config, clock=FastClock(), source=source,
                                sinks=[plant, monitor, *sinks], workers=workers,
                                injected_overruns=injections.overruns,
                                injected_nan=injections.nan_outputs, loaded=loaded)
    plant.executive = executive
    executive.run(horizon_ns)
    end_ns = executive.health.frames * config.runtime.minor_frame_ns
    overruns = Counter(o.task for o in executive.overruns)
    rejects = Counter(executive.health.rejects) + Counter(source.checks.rejects)
    record = plant.record(case.seed, overruns, hard_tasks(config), dict(rejects))
    log = sorted([a for a in model_log if a.t_ns < end_ns] + injector.log, key=_T_NS)
    describe = {name: dict(task.describe()) for name, task in loaded.tasks.items()}
    return FaultedFlight(record, executive.health, dict(source.checks.rejects),
                         source.checks.gaps, log, dict(monitor.non_finite), describe,
                         list(executive.health.events.recent))

