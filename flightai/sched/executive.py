"""The LET executive: a cyclic executive whose outputs appear at deadlines.

At each minor-frame instant ``t`` (integer ns), in this order:

1. commands queued since the last frame take effect;
2. jobs whose deadline is ``t`` are resolved in config order: outputs
   published, or an overrun / guard policy applied;
3. the input source is polled and accepted samples become visible;
4. tasks released at ``t`` snapshot their inputs and start, on this thread
   (``placement = "frame"``) or on a worker thread.

Outputs therefore do not depend on execution time, worker count or clock:
a non-real-time clock (``fast``, lockstep ``external``) waits for a job at its
deadline, a real-time clock declares an overrun and records it, and a replay
given that record (``injected_overruns``) reproduces it exactly.
"""

from __future__ import annotations

import enum
import gc
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from flightai.config.schema import (
    TIME_TAG,
    MissionConfig,
    Placement,
    Policy,
    TaskConfig,
    time_tagged,
)
from flightai.sched.bound import BoundTask, Signals, TaskFault, frozen, zeros_for
from flightai.sched.clock import Clock, ExternalClock
from flightai.sched.guards import Guard, OutputGuard
from flightai.sched.health import Event, Health, Mode, Reject, Severity, TaskHealth
from flightai.sched.io import InputSource, OutputSink, Publication, Sample
from flightai.sched.policies import POLICIES
from flightai.sched.table import build_table
from flightai.sched.task import Task
from flightai.timebase import FOREVER

_GC_EVERY_FRAMES = 100


class OverrunKind(enum.Enum):
    """How a job missed its deadline."""

    LATE = "late"                 # it ran, but was not done by the deadline
    NOT_STARTED = "not_started"   # its previous job was still running at release


@dataclass(frozen=True)
class Overrun:
    """One overrun, as recorded for replay: the task, its release instant and kind."""

    task: str
    t_release_ns: int
    kind: OverrunKind


@dataclass(frozen=True)
class NanOutput:
    """An injected fault: the job of ``task`` released at ``t_release_ns`` outputs NaN.

    Applied at the job's deadline to the primary's computed outputs (every
    floating-point array becomes NaN), before the guards: a bench's fault
    injection, or the replay of a faulted run. Never set in flight.
    """

    task: str
    t_release_ns: int


@dataclass(frozen=True)
class _InputSpec:
    """What an input sample is checked against, resolved once."""

    dtype: np.dtype[np.generic]
    shape: tuple[int, ...]
    max_age_ns: int


class _Job:
    """One release of a task, from its input snapshot to its deadline."""

    __slots__ = (
        "fault",
        "forced",
        "future",
        "not_started",
        "outputs",
        "runner",
        "snapshot",
        "t_release_ns",
        "wall_exec_ns",
    )

    def __init__(self, runner: BoundTask, t_release_ns: int, snapshot: Signals | None,
                 forced: OverrunKind | None) -> None:
        self.runner = runner
        self.t_release_ns = t_release_ns
        self.snapshot = snapshot
        self.forced = forced
        self.future: Future[tuple[Signals, int]] | None = None
        self.outputs: Signals | None = None
        self.fault: str | None = None
        self.wall_exec_ns = 0
        self.not_started = False


class _Plan:
    """What the frame loop needs of one periodic task, resolved once at load.

    Also holds the task's running state: its pending job, its busy worker
    future, the outputs last published and last computed, its fallback latch.
    """

    __slots__ = (
        "busy",
        "fallback",
        "guards",
        "job",
        "last",
        "name",
        "needs",
        "on_fallback",
        "outputs",
        "previous",
        "primary",
        "time_tags",
    )

    def __init__(self, primary: BoundTask, fallback: BoundTask | None, needs: tuple[str, ...],
                 time_tags: tuple[str, ...], guards: tuple[tuple[str, tuple[Guard, ...]], ...],
                 last: Signals) -> None:
        self.name = primary.name
        self.primary = primary
        self.fallback = fallback
        self.needs = needs
        self.outputs = tuple(sig for _, sig in primary.config.outputs)
        self.time_tags = time_tags
        self.guards = guards
        self.job: _Job | None = None
        self.busy: Future[tuple[Signals, int]] | None = None
        self.last = last
        self.previous: Signals = {}
        self.on_fallback = False


def _nan_like(outputs: Signals) -> Signals:
    """The outputs with every floating-point array replaced by NaN (injected fault)."""
    return {sig: frozen(np.full_like(value, np.nan)) if value.dtype.kind in "fc" else value
            for sig, value in outputs.items()}


def _time_tag(t_ns: int) -> npt.NDArray[np.generic]:
    """The read-only int64 [1] value of a ``signal@t_ns`` port (a view of immutable bytes)."""
    return np.frombuffer(t_ns.to_bytes(8, sys.byteorder, signed=True), np.int64)


def _run_started(runner: BoundTask, inputs: Signals,
                 started: threading.Event) -> tuple[Signals, int]:
    """A worker job that says when it has started, for a clock that never idles.

    On the ``fast`` clock the frame thread runs Python without pause, so a worker
    thread would get the interpreter lock only when Python's switch interval
    (5 ms) forces it or when the frame thread waits at the job's deadline: the
    job would run after the frames it should overlap. Waiting for the start hands
    the lock over at once; the job's own lock-free part (an onnxruntime run)
    then overlaps the next frames. About 0.1 ms per worker job; outputs are the
    same either way.
    """
    started.set()
    return runner.run(inputs)


class Executive:
    """Runs a mission's tasks under LET, paced by a clock.

    Args:
        config: the validated mission.
        tasks: the job body of every task in the config, by task name.
        clock: what paces logical time.
        source: polled once per frame for input samples.
        sinks: receive every publication and event, on this thread.
        workers: worker threads for ``placement = "worker"`` tasks
            (default ``runtime.workers``); results do not depend on it.
        injected_overruns: overruns to force (a test's injection or the record
            of a previous run being replayed).
        injected_nan: jobs whose outputs to replace by NaN (fault injection).

    Attributes:
        loop_started: ``(time.perf_counter(), time.process_time())`` when the
            first frame of the last :meth:`run` began (after warm-up and the
            garbage collector's freeze), for timing the frame loop alone.
    """

    def __init__(self, config: MissionConfig, tasks: Mapping[str, Task], clock: Clock, *,
                 source: InputSource | None = None, sinks: Sequence[OutputSink] = (),
                 workers: int | None = None, injected_overruns: Iterable[Overrun] = (),
                 injected_nan: Iterable[NanOutput] = ()) -> None:
        self.config = config
        self.table = build_table(config)
        self.clock = clock
        self.health = Health()
        self.overruns: list[Overrun] = []
        self.loop_started = (0.0, 0.0)
        self._source = source
        self._sinks = tuple(sinks)
        self._workers = workers or config.runtime.workers
        self._injected = {(o.task, o.t_release_ns): o.kind for o in injected_overruns}
        self._nan_jobs = {(f.task, f.t_release_ns) for f in injected_nan}
        self._bound = {t.name: BoundTask(t, tasks[t.name], config) for t in config.tasks}
        self._values: Signals = {s.name: zeros_for(config, s.name) for s in config.signals}
        self._timed = {base for t in config.tasks for _, sig in t.inputs
                       if (base := time_tagged(sig)) is not None}
        for base in self._timed:
            self._values[base + TIME_TAG] = zeros_for(config, base + TIME_TAG)
        self._input_t_ns: dict[str, int] = {}
        self._inputs = {s.name: _InputSpec(np.dtype(s.dtype), s.shape, s.max_age_ns)
                        for s in config.signals if s.input}
        self._max_age_ns = {s.name: s.max_age_ns for s in config.signals
                            if s.input and s.max_age_ns}
        self._watch_due_ns = FOREVER
        self._silent: set[str] = set()
        self._resumed = False  # a silent input got a sample since the last watch
        guards: dict[str, list[Guard]] = {}
        for g in config.guards:
            guards.setdefault(g.signal, []).append(OutputGuard(g))
        self._plans = {t.name: self._plan(t, guards) for t in config.periodic_tasks}
        for name in self._plans:
            self.health.tasks[name] = TaskHealth()
        self._slots = tuple((tuple(self._plans[n] for n in slot.deadlines),
                             tuple(self._plans[n] for n in slot.releases))
                            for slot in self.table.slots)
        self._commands: queue.SimpleQueue[Callable[[int], None]] = queue.SimpleQueue()
        self._stop_requested = False
        self._pool: ThreadPoolExecutor | None = None
        self.t_ns = 0
        if isinstance(clock, ExternalClock):
            clock.set_timeout_handler(self._on_tick_timeout)

    def _plan(self, task: TaskConfig, guards: Mapping[str, list[Guard]]) -> _Plan:
        """Resolve once what a release and a deadline of ``task`` need (guards by signal)."""
        needed = [sig for _, sig in task.inputs]
        if task.fallback:
            needed += [sig for _, sig in self.config.task(task.fallback).inputs]
        outputs = [sig for _, sig in task.outputs]
        return _Plan(self._bound[task.name],
                     self._bound[task.fallback] if task.fallback else None,
                     tuple(dict.fromkeys(needed)),
                     tuple(sig for sig in outputs if sig in self._timed),
                     tuple((sig, tuple(guards[sig])) for sig in outputs if sig in guards),
                     {sig: self._values[sig] for sig in outputs})

    # -- life cycle ---------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Run every task's warm-up on zero inputs, then report READY."""
        for bound in self._bound.values():
            inputs = {port: self._values[sig] for port, sig in bound.config.inputs}
            bound.task.warmup(inputs)
        self.health.mode = Mode.READY

    def run(self, duration_ns: int | None = None) -> None:
        """Run frames from mission time 0 until ``duration_ns`` (excluded) or :meth:`stop`.

        Stops only at a frame boundary: a frame, once started, is finished.
        """
        if self.health.mode is Mode.STARTUP:
            self.warm_up()
        frame_ns = self.table.minor_frame_ns
        freeze = self.config.runtime.freeze_gc
        if freeze:
            gc.collect()
            gc.freeze()
            gc.disable()
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="flightai-worker")
        if self.health.mode is Mode.READY:
            self.health.mode = Mode.NOMINAL
        clock = self.clock
        clock.start(0)
        self.loop_started = (time.perf_counter(), time.process_time())
        t_ns = 0
        try:
            while duration_ns is None or t_ns < duration_ns:
                if not clock.wait_until(t_ns) or self._stop_requested:
                    break
                self._frame(t_ns)
                t_ns += frame_ns
                if freeze and self.health.frames % _GC_EVERY_FRAMES == 0 and (
                        not clock.real_time or clock.lateness_ns(t_ns) < -frame_ns // 2):
                    gc.collect(0)
        finally:
            self._pool.shutdown(wait=True)
            self._pool = None
            if freeze:
                gc.enable()
                gc.unfreeze()

    def stop(self) -> None:
        """Stop at the next frame boundary. Safe from any thread or a signal handler."""
        self._stop_requested = True
        self.clock.stop()

    # -- commands (applied at the next frame boundary) ---------------------------------------

    def request_leave_safe(self) -> None:
        """Return from SAFE to NOMINAL at the next frame (fallbacks stay latched)."""
        self._commands.put(self._leave_safe)

    def request_enter_safe(self, reason: str = "by command") -> None:
        """Enter SAFE at the next frame, latching every fallback."""
        self._commands.put(lambda t_ns: self._enter_safe(t_ns, reason))

    def request_reset_counters(self) -> None:
        """Zero the health counters at the next frame (modes and latches are kept)."""
        self._commands.put(lambda t_ns: self.health.reset_counters())

    def request_restore_primary(self, task: str) -> None:
        """Release the fallback latch of ``task`` at the next frame."""
        if task not in self.health.tasks:
            raise KeyError(task)
        self._commands.put(lambda t_ns: self._restore_primary(task, t_ns))

    def value(self, signal: str) -> npt.NDArray[np.generic]:
        """The value of a signal as visible now (read-only)."""
        return self._values[signal]

    # -- one frame ----------------------------------------------------------------------------

    def _frame(self, t_ns: int) -> None:
        self.t_ns = t_ns
        health = self.health
        frame_ns = self.table.minor_frame_ns
        if self.clock.real_time:  # a virtual clock is never late: its ring would hold zeros
            lateness = self.clock.lateness_ns(t_ns)
            health.record_lateness(lateness)
            if lateness >= frame_ns:
                health.frame_slips += 1
                self._event(t_ns, Severity.WARNING, "frame_slip", "", f"{lateness} ns late")
        commands = self._commands
        while not commands.empty():
            commands.get_nowait()(t_ns)
        deadlines, releases = self._slots[(t_ns % self.table.hyperperiod_ns) // frame_ns]
        for plan in deadlines:
            self._complete(plan, t_ns)
        if self._source is not None:
            for sample in self._source.poll(t_ns):
                self._ingest(sample, t_ns)
        if self._resumed or t_ns > self._watch_due_ns:
            self._watch_inputs(t_ns)
        for plan in releases:
            self._release(plan, t_ns)
        health.frames += 1
        for sink in self._sinks:
            sink.frame_done(t_ns, health)

    def _ingest(self, sample: Sample, t_ns: int) -> None:
        signal = sample.signal
        spec = self._inputs.get(signal)
        if spec is None:
            self._reject(sample, t_ns, Reject.NOT_AN_INPUT if signal in self._values
                         else Reject.UNKNOWN_TOPIC)
            return
        reason = None
        if sample.value.dtype != spec.dtype:
            reason = Reject.BAD_DTYPE
        elif sample.value.shape != spec.shape:
            reason = Reject.BAD_SHAPE
        elif sample.t_ns > t_ns:
            reason = Reject.FUTURE_TIMESTAMP
        elif spec.max_age_ns and sample.t_ns < t_ns - spec.max_age_ns:
            reason = Reject.STALE
        elif sample.t_ns < self._input_t_ns.get(signal, sample.t_ns):
            reason = Reject.OUT_OF_ORDER
        if reason is not None:
            self._reject(sample, t_ns, reason)
            return
        self._values[signal] = sample.value if sample.immutable else frozen(sample.value)
        if signal in self._timed:
            self._values[signal + TIME_TAG] = _time_tag(sample.t_ns)
        self._input_t_ns[signal] = sample.t_ns
        if spec.max_age_ns:
            if sample.t_ns + spec.max_age_ns < self._watch_due_ns:
                self._watch_due_ns = sample.t_ns + spec.max_age_ns
            if signal in self._silent:
                self._resumed = True
        self.health.inputs_accepted += 1

    def _reject(self, sample: Sample, t_ns: int, reason: Reject) -> None:
        self.health.reject(reason)
        self._event(t_ns, Severity.WARNING, "input_rejected", "",
                    f"{sample.signal}: {reason.value}")

    def _watch_inputs(self, t_ns: int) -> None:
        """Flag an input silent for longer than its ``max_age_ms`` (one event per outage).

        Only inputs that have delivered a sample are watched: before the first one,
        a signal is not late but not started (the handover, a sensor not yet in range).
        Runs only when an input may have gone silent (after the earliest instant one
        can, kept up to date by :meth:`_ingest`) or a silent one got a sample: with
        no sample, a silent input cannot resume and a timed-out one cannot time out
        again, so the frames in between have nothing to find.
        """
        due = FOREVER
        for signal, max_age_ns in self._max_age_ns.items():
            last = self._input_t_ns.get(signal)
            if last is None:
                continue
            if t_ns - last > max_age_ns:
                if signal not in self._silent:
                    self._silent.add(signal)
                    self.health.input_timeouts += 1
                    self._event(t_ns, Severity.WARNING, "input_timeout", "",
                                f"{signal}: no sample since {last} ns")
                continue
            due = min(due, last + max_age_ns)
            if signal in self._silent:
                self._silent.discard(signal)
                self._event(t_ns, Severity.INFO, "input_resumed", "", signal)
        self._watch_due_ns = due
        self._resumed = False

    def _release(self, plan: _Plan, t_ns: int) -> None:
        self.health.tasks[plan.name].releases += 1
        runner = plan.fallback if plan.on_fallback and plan.fallback else plan.primary
        values = self._values
        if plan.fallback is None:  # no other task may need this job's inputs: name them by port
            inputs = {port: values[sig] for port, sig in runner.inputs}
            snapshot = None
        else:
            snapshot = {sig: values[sig] for sig in plan.needs}
            inputs = {port: snapshot[sig] for port, sig in runner.inputs}
        job = _Job(runner, t_ns, snapshot,
                   self._injected.get((plan.name, t_ns)) if self._injected else None)
        busy = plan.busy
        if busy is not None and not self.clock.real_time:
            busy.exception()  # virtual time: a late job's run always ends before the next one
        if job.forced is OverrunKind.NOT_STARTED or (
                job.forced is None and busy is not None and not busy.done()):
            job.not_started = True
        elif runner.config.placement is Placement.WORKER and self._pool is not None:
            if self.clock.real_time:
                job.future = plan.busy = self._pool.submit(runner.run, inputs)
            else:  # see _run_started
                started = threading.Event()
                job.future = plan.busy = self._pool.submit(_run_started, runner, inputs,
                                                           started)
                started.wait()
        else:
            try:
                job.outputs, job.wall_exec_ns = runner.run(inputs)
            except TaskFault as fault:
                job.fault = str(fault)
        plan.job = job

    def _complete(self, plan: _Plan, t_ns: int) -> None:
        job = plan.job
        if job is None:  # deadline of a release before mission time 0
            return
        plan.job = None
        name = plan.name
        if job.not_started or job.forced is not None or job.future is not None or (
                self.clock.real_time):
            kind = self._overrun_kind(job, plan)
            if kind is not None:
                self._overrun(plan, job, t_ns, kind)
                return
        task = self.health.tasks[name]
        if job.future is not None:
            try:
                job.outputs, job.wall_exec_ns = job.future.result()
            except TaskFault as fault:
                job.fault = str(fault)
        task.record_exec(job.wall_exec_ns)
        primary = job.runner is plan.primary
        if (self._nan_jobs and job.outputs is not None and primary
                and (name, job.t_release_ns) in self._nan_jobs):
            job.outputs = _nan_like(job.outputs)
        if job.fault is not None or job.outputs is None:
            task.errors += 1
            self._event(t_ns, Severity.ERROR, "task_error", name, job.fault or "no outputs")
            self._apply(plan.primary.config.on_guard, plan, job, t_ns)
            return
        trip = self._guard_trip(plan, job.outputs) if plan.guards else None
        if trip is not None:
            task.guard_trips += 1
            self._event(t_ns, Severity.WARNING, "guard_trip", name, trip)
            if self.config.safe.on_guard_trip:
                self._enter_safe(t_ns, f"guard trip on {name}")
            self._apply(plan.primary.config.on_guard, plan, job, t_ns)
            return
        task.consecutive_overruns = 0
        self._publish(plan, job, t_ns, job.outputs, "ok" if primary else "fallback", task)

    def _overrun_kind(self, job: _Job, plan: _Plan) -> OverrunKind | None:
        """Decide whether the job overran; waits for it when the clock is not real time."""
        if job.not_started:
            return OverrunKind.NOT_STARTED
        if job.forced is OverrunKind.LATE:
            return OverrunKind.LATE
        if not self.clock.real_time:
            if job.future is not None:
                job.future.exception()  # wait: logical time does not pass a running job
            return None
        if job.future is not None:
            return None if job.future.done() else OverrunKind.LATE
        late = job.wall_exec_ns > plan.primary.config.deadline_ns
        return OverrunKind.LATE if late else None

    def _overrun(self, plan: _Plan, job: _Job, t_ns: int, kind: OverrunKind) -> None:
        name = plan.name
        task = self.health.tasks[name]
        task.overruns += 1
        task.consecutive_overruns += 1
        if kind is OverrunKind.NOT_STARTED:
            task.busy_skips += 1
        self.overruns.append(Overrun(name, job.t_release_ns, kind))
        self._event(t_ns, Severity.WARNING, "overrun", name,
                    f"{kind.value}, released at {job.t_release_ns} ns")
        limit = self.config.safe.after_consecutive_overruns
        if limit and task.consecutive_overruns >= limit:
            self._enter_safe(t_ns, f"{task.consecutive_overruns} consecutive overruns of {name}")
        self._apply(plan.primary.config.on_overrun, plan, job, t_ns)

    def _apply(self, policy: Policy, plan: _Plan, job: _Job, t_ns: int) -> None:
        task = self.health.tasks[plan.name]

        def run_fallback() -> Signals | None:
            fallback = plan.fallback
            if fallback is None or job.snapshot is None:
                return None
            task.fallback_runs += 1
            try:
                outputs, _ = fallback.execute(job.snapshot)
            except TaskFault as fault:
                task.errors += 1
                self._event(t_ns, Severity.ERROR, "task_error", fallback.name, str(fault))
                return None
            trip = self._guard_trip(plan, outputs)
            if trip is not None:
                task.guard_trips += 1
                self._event(t_ns, Severity.ERROR, "guard_trip", fallback.name, trip)
                return None
            return outputs

        resolution = POLICIES[policy].resolve(plan.last, run_fallback)
        if resolution.engage_fallback:
            self._latch_fallback(plan, t_ns)
        if resolution.outputs is None:
            task.skipped += 1
            return
        if resolution.status == "held":
            task.held += 1
        self._publish(plan, job, t_ns, dict(resolution.outputs), resolution.status, task)

    def _guard_trip(self, plan: _Plan, outputs: Signals) -> str | None:
        """The first guard reason against ``outputs``, or None.

        ``max_step`` compares with the task's previous computed outputs, not the
        last published ones: after a trip the held value would otherwise refuse
        every later output and lock the task out.
        """
        previous = plan.previous
        plan.previous = outputs
        for sig, guards in plan.guards:
            value = outputs[sig]
            for guard in guards:
                reason = guard.check(value, previous.get(sig))
                if reason is not None:
                    return f"{sig}: {reason}"
        return None

    def _publish(self, plan: _Plan, job: _Job, t_ns: int, outputs: Signals, status: str,
                 task: TaskHealth) -> None:
        values = self._values
        ordered = tuple([(sig, outputs[sig]) for sig in plan.outputs])
        for sig, value in ordered:
            values[sig] = value
        if plan.time_tags:
            tag = _time_tag(t_ns)
            for sig in plan.time_tags:
                values[sig + TIME_TAG] = tag
        plan.last = outputs
        task.published += 1
        publication = Publication(t_ns, plan.name, job.t_release_ns, ordered, status)
        for sink in self._sinks:
            sink.publish(publication)

    # -- modes and events ---------------------------------------------------------------------

    def _latch_fallback(self, plan: _Plan, t_ns: int) -> None:
        if plan.on_fallback:
            return
        plan.on_fallback = True
        self.health.tasks[plan.name].on_fallback = True
        self._event(t_ns, Severity.WARNING, "fallback_engaged", plan.name,
                    str(plan.primary.config.fallback))
        if self.config.safe.on_fallback:
            self._enter_safe(t_ns, f"fallback engaged on {plan.name}")

    def _restore_primary(self, name: str, t_ns: int) -> None:
        self._plans[name].on_fallback = False
        self.health.tasks[name].on_fallback = False
        self._event(t_ns, Severity.INFO, "primary_restored", name)

    def _enter_safe(self, t_ns: int, reason: str) -> None:
        if self.health.mode is Mode.SAFE:
            return
        self.health.mode = Mode.SAFE
        self._event(t_ns, Severity.ERROR, "safe_entered", "", reason)
        for plan in self._plans.values():
            if plan.fallback is not None:
                self._latch_fallback(plan, t_ns)

    def _leave_safe(self, t_ns: int) -> None:
        if self.health.mode is Mode.SAFE:
            self.health.mode = Mode.NOMINAL
            self._event(t_ns, Severity.INFO, "safe_left", "", "by command")

    def _on_tick_timeout(self, t_ns: int) -> None:
        self.health.tick_timeouts += 1
        self._event(t_ns, Severity.ERROR, "tick_timeout", "", f"no tick for instant {t_ns} ns")
        if self.config.safe.on_tick_timeout:
            self._enter_safe(t_ns, "external clock tick timeout")

    def _event(self, t_ns: int, severity: Severity, kind: str, task: str = "",
               detail: str = "") -> None:
        event = Event(t_ns, severity, kind, task, detail)
        if self.health.events.add(event):
            for sink in self._sinks:
                sink.event(event)
