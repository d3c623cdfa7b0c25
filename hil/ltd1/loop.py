"""One LTD-1 descent flown in-process: the simulator is the runtime's input source and sink.

This is the closed loop campaigns use: no sockets, the fast clock, and the
same LET semantics as over the bus, so a case flown here publishes exactly
what it publishes through the flight-software stub (``hil.ltd1.stub``) against
a separate runtime process; the tests check that the digests match.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from flightai.config.loader import load_mission
from flightai.config.schema import MissionConfig, Policy
from flightai.runtime import LoadedTasks, build_executive, load_tasks
from flightai.sched.clock import FastClock
from flightai.sched.executive import Executive, Overrun
from flightai.sched.health import Event, Health
from flightai.sched.io import DigestSink, Publication, Sample
from flightai.timebase import NS_PER_MS, NS_PER_S
from hil.ltd1.constants import MAX_MISSION_NS
from hil.ltd1.criteria import FlightRecord
from hil.ltd1.dispersions import Case
from hil.ltd1.sim import Simulator

THRUST_SIGNAL = "thrust.cmd"
NAV_SIGNAL = "nav.state"
RTA_SIGNAL = "rta.status"
TRAJECTORY_STEP_NS = 100 * NS_PER_MS


class Plant:
    """The simulated vehicle seen by the runtime: sensor samples in, thrust commands out.

    It is both the executive's input source (``poll``) and one of its sinks
    (``publish``), and it remembers what the record of the flight needs.
    """

    def __init__(self, sim: Simulator, keep_trajectory: bool = False) -> None:
        self.sim = sim
        self.trajectory: list[list[float]] | None = [] if keep_trajectory else None
        self._thrust_n = np.zeros(3)
        self.digest = DigestSink()
        self.nav_state: np.ndarray = np.zeros((1, 12))
        self.rta_status: np.ndarray = np.zeros((1, 3), np.float32)
        self.fallback_tasks: set[str] = set()
        self.executive: Executive | None = None

    def poll(self, t_ns: int) -> list[Sample]:
        """Advance the truth to ``t_ns``; every measurement taken up to then."""
        self.sim.advance_to(t_ns)
        if self.trajectory is not None and t_ns % TRAJECTORY_STEP_NS == 0:
            truth = self.sim.truth()
            self.trajectory.append([t_ns / NS_PER_S, *truth.r_m, *truth.v_mps, truth.mass_kg,
                                    *self.nav_state[0, :3], *self._thrust_n])
        return [Sample(name, t_meas_ns, value)
                for name, t_meas_ns, value in self.sim.sensor_samples_until(t_ns)]

    def publish(self, publication: Publication) -> None:
        """Apply a thrust command from its publication instant; note nav and assurance."""
        self.digest.publish(publication)
        if publication.status == "fallback":
            self.fallback_tasks.add(publication.task)
        for signal, value in publication.outputs:
            if signal == THRUST_SIGNAL:
                self._thrust_n = np.asarray(value, np.float64)
                self.sim.apply_thrust(publication.t_ns, self._thrust_n)
            elif signal == NAV_SIGNAL:
                self.nav_state = value
            elif signal == RTA_SIGNAL and value[0, 2] == 0.0:  # the last phase-A status
                self.rta_status = value

    def event(self, event: Event) -> None:
        """Events are counted by the executive's health; nothing to do here."""

    def frame_done(self, t_ns: int, health: Health) -> None:
        """Stop the runtime once the vehicle is down (or the run is too long)."""
        if (self.sim.done or t_ns >= MAX_MISSION_NS) and self.executive is not None:
            self.executive.stop()

    def record(self, seed: int, overruns: Mapping[str, int], hard: frozenset[str],
               rejects: Mapping[str, int]) -> FlightRecord:
        """The record of the finished descent, given the runtime's counters.

        Args:
            seed: the case seed.
            overruns: deadline misses by task.
            hard: the tasks whose misses fail the descent (:func:`hard_tasks`).
            rejects: inputs refused, by reason.
        """
        outcome = self.sim.outcome()
        nav_error = self.nav_state[0, :2] - self.sim.truth().r_m[:2]
        return FlightRecord(
            seed=seed, touchdown=outcome.touchdown, t_touchdown_ns=outcome.t_ns,
            vertical_speed_mps=outcome.vertical_speed_mps,
            horizontal_speed_mps=outcome.horizontal_speed_mps,
            landing_error_m=outcome.landing_error_m, propellant_kg=outcome.propellant_kg,
            early_contact=outcome.early_contact,
            nav_error_m=float(np.hypot(*nav_error)),
            hard_overruns=sum(n for task, n in overruns.items() if task in hard),
            overruns=sum(overruns.values()), rejects=dict(rejects),
            fallback=tuple(sorted(self.fallback_tasks)),
            learned_guidance=bool(self.rta_status[0, 0] == 1.0),
            digest=self.digest.hexdigest())


def hard_tasks(config: MissionConfig) -> frozenset[str]:
    """Tasks whose deadline misses fail a descent: every periodic task that may not skip."""
    return frozenset(t.name for t in config.periodic_tasks if t.on_overrun is not Policy.SKIP)


def fly(mission: Path | MissionConfig, case: Case, *, overrides: Sequence[str] = (),
        workers: int | None = None, injected_overruns: Iterable[Overrun] = (),
        loaded: LoadedTasks | None = None) -> FlightRecord:
    """Fly one descent in-process on the fast clock and judge it.

    Args:
        mission: the mission file (or an already loaded config).
        case: the dispersed case (``draw_case(seed)``).
        overrides: ``--set`` style config overrides.
        workers: worker threads (results do not depend on it).
        injected_overruns: forced deadline misses (fault injection or replay).
        loaded: tasks already built from the same config (campaigns reuse sessions;
            stateful tasks must be fresh, so pass this only for one descent).
    """
    config = mission if isinstance(mission, MissionConfig) else load_mission(mission, overrides)
    plant = Plant(Simulator(case))
    executive = build_executive(config, clock=FastClock(), source=plant, sinks=[plant],
                                workers=workers, injected_overruns=injected_overruns,
                                loaded=loaded or load_tasks(config))
    plant.executive = executive
    executive.run(MAX_MISSION_NS)
    overruns = Counter(o.task for o in executive.overruns)
    return plant.record(case.seed, overruns, hard_tasks(config), executive.health.rejects)
