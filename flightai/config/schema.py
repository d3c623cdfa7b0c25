"""The mission config as frozen dataclasses; :mod:`.loader` builds them from TOML.

Units are in the names: ``*_ms`` whole milliseconds, ``*_us`` whole
microseconds. Conversions to integer nanoseconds live on the dataclasses so the
scheduler never sees a float.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flightai.timebase import NS_PER_MS, NS_PER_US


class ClockKind(enum.Enum):
    """Which clock paces the executive."""

    WALL = "wall"
    FAST = "fast"
    EXTERNAL = "external"


class LateJobs(enum.Enum):
    """What the executive does at a deadline whose job is still running."""

    WAIT = "wait"
    OVERRUN = "overrun"


class Policy(enum.Enum):
    """Response to an overrun or a tripped output guard."""

    HOLD = "hold"
    SKIP = "skip"
    FALLBACK = "fallback"


class Placement(enum.Enum):
    """Where a task's jobs execute."""

    FRAME = "frame"
    WORKER = "worker"


class GraphOptimization(enum.Enum):
    """onnxruntime graph optimisation level (it changes results: pin it)."""

    DISABLED = "disabled"
    BASIC = "basic"
    EXTENDED = "extended"
    ALL = "all"


class ExecutionMode(enum.Enum):
    """onnxruntime execution mode."""

    SEQUENTIAL = "sequential"
    PARALLEL = "parallel"


TIME_TAG = "@t_ns"


def time_tagged(name: str) -> str | None:
    """The signal whose time tag ``name`` is (``"imu.dv@t_ns"`` -> ``"imu.dv"``), else None.

    A task input port may read ``signal@t_ns``: an int64 [1] array holding the
    instant (mission ns) the signal's current value was measured (an input) or
    published (a task output); 0 before the first value.
    """
    return name[: -len(TIME_TAG)] if name.endswith(TIME_TAG) else None


@dataclass(frozen=True)
class ExternalClockConfig:
    """Settings of the ``external`` clock (ticks fed from outside)."""

    tick_timeout_ms: int = 500
    late_jobs: LateJobs = LateJobs.WAIT


class IfDenied(enum.Enum):
    """What to do when the OS refuses a process setting (affinity, priority, memory lock)."""

    REFUSE = "refuse"
    WARN = "warn"


@dataclass(frozen=True)
class ProcessConfig:
    """Process settings applied by ``flightai run`` before any thread starts.

    Every thread the runtime starts later (onnxruntime pools, workers, bus)
    inherits them. ``realtime_priority`` 0 keeps the normal scheduler; 1-99
    asks for ``SCHED_FIFO`` at that priority.
    """

    cpu_affinity: tuple[int, ...] = ()
    realtime_priority: int = 0
    lock_memory: bool = False
    keep_heap: bool = False
    if_denied: IfDenied = IfDenied.REFUSE


@dataclass(frozen=True)
class AdmissionConfig:
    """Timing admission: a task's budget must cover its profiled p99.9 plus this margin."""

    margin_pct: int = 20
    margin_us: int = 50

    def margin_ns(self, p999_ns: int) -> int:
        """The margin in nanoseconds added to a measured p99.9 of ``p999_ns``."""
        return p999_ns * self.margin_pct // 100 + self.margin_us * NS_PER_US


@dataclass(frozen=True)
class RuntimeConfig:
    """Executive settings: frame, clock, threads, run length."""

    minor_frame_ms: int
    clock: ClockKind = ClockKind.WALL
    workers: int = 2
    duration_ms: int = 0
    spin_us: int = 1000
    freeze_gc: bool = True
    external: ExternalClockConfig = field(default_factory=ExternalClockConfig)
    process: ProcessConfig = field(default_factory=ProcessConfig)
    admission: AdmissionConfig = field(default_factory=AdmissionConfig)

    @property
    def minor_frame_ns(self) -> int:
        """The minor frame in nanoseconds."""
        return self.minor_frame_ms * NS_PER_MS


@dataclass(frozen=True)
class SignalSpec:
    """A named array exchanged between tasks, or fed from outside when ``input``."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    input: bool = False
    max_age_ms: int = 0

    @property
    def max_age_ns(self) -> int:
        """Oldest acceptable input age in nanoseconds (0: no limit)."""
        return self.max_age_ms * NS_PER_MS


@dataclass(frozen=True)
class PortSpec:
    """One declared model input or output: name, dtype and static shape."""

    name: str
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ModelConfig:
    """An ONNX model file, its hash, its signature and its pinned session options."""

    name: str
    file: Path
    sha256: str
    inputs: tuple[PortSpec, ...]
    outputs: tuple[PortSpec, ...]
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    allow_fallback: bool = True
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    spinning: bool = False
    graph_optimization: GraphOptimization = GraphOptimization.ALL
    execution_mode: ExecutionMode = ExecutionMode.SEQUENTIAL
    deterministic_compute: bool = True
    warmup_runs: int = 5
    #: The model's bytes when they come from a verified bundle (then ``file`` is not read).
    data: bytes | None = field(default=None, repr=False, compare=False)
    provider_options: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()

    def options_for(self, provider: str) -> dict[str, str]:
        """The pinned options of ``provider`` (empty when none are configured)."""
        return dict(next((opts for name, opts in self.provider_options if name == provider), ()))


@dataclass(frozen=True)
class TaskConfig:
    """A periodic task: an ONNX model, a Python function or a Python factory.

    Exactly one of ``model``, ``function`` and ``factory`` is set. A task with
    ``fallback_only`` has no rate of its own: it stands in for the task that
    names it as ``fallback``.
    """

    name: str
    inputs: tuple[tuple[str, str], ...]
    outputs: tuple[tuple[str, str], ...]
    period_ms: int = 0
    offset_ms: int = 0
    deadline_ms: int = 0
    budget_us: int = 0
    model: str | None = None
    function: str | None = None
    factory: str | None = None
    params: tuple[tuple[str, Any], ...] = ()
    placement: Placement = Placement.FRAME
    on_overrun: Policy = Policy.HOLD
    on_guard: Policy = Policy.HOLD
    fallback: str | None = None
    fallback_only: bool = False

    @property
    def period_ns(self) -> int:
        """Release period in nanoseconds."""
        return self.period_ms * NS_PER_MS

    @property
    def offset_ns(self) -> int:
        """First release in nanoseconds after mission time zero."""
        return self.offset_ms * NS_PER_MS

    @property
    def deadline_ns(self) -> int:
        """Relative deadline in nanoseconds (when outputs become visible)."""
        return self.deadline_ms * NS_PER_MS

    @property
    def budget_ns(self) -> int:
        """Execution-time budget in nanoseconds (0: none declared)."""
        return self.budget_us * NS_PER_US


@dataclass(frozen=True)
class GuardConfig:
    """Checks applied to a task output signal before it is published."""

    signal: str
    finite: bool = True
    min: float | None = None
    max: float | None = None
    max_step: float | None = None


@dataclass(frozen=True)
class SafeConfig:
    """Which events move the runtime to SAFE (left only by command)."""

    on_fallback: bool = False
    on_guard_trip: bool = False
    on_tick_timeout: bool = True
    after_consecutive_overruns: int = 0


@dataclass(frozen=True)
class SourceConfig:
    """An in-process input source: a factory returning an :class:`InputSource`."""

    factory: str
    params: tuple[tuple[str, Any], ...] = ()


class CommandClass(enum.Enum):
    """What a bus client may command: read (status), control (modes, counters), admin (stop)."""

    READ = "read"
    CONTROL = "control"
    ADMIN = "admin"


@dataclass(frozen=True)
class CurveClient:
    """One allowed CURVE client: its Z85 public key and the command classes it may use."""

    name: str
    public_key: str
    commands: tuple[CommandClass, ...] = (CommandClass.READ,)


@dataclass(frozen=True)
class CurveConfig:
    """CurveZMQ on every bus socket, with an allow-list of client keys."""

    server_secret_key_file: Path
    clients: tuple[CurveClient, ...]


@dataclass(frozen=True)
class BusConfig:
    """ZeroMQ endpoints, limits and telemetry rate. Every socket is bound by the runtime."""

    sensors: str = "tcp://127.0.0.1:5550"
    outputs: str = "tcp://127.0.0.1:5551"
    commands: str = "tcp://127.0.0.1:5552"
    max_message_bytes: int = 4 * 1024 * 1024
    health_period_ms: int = 100
    sensor_hwm: int = 10_000
    output_hwm: int = 10_000
    max_buffered_bytes: int = 64 * 1024 * 1024
    curve: CurveConfig | None = None


@dataclass(frozen=True)
class BundleConfig:
    """What ``flightai bundle build`` packs besides the config, its models and its code."""

    include: tuple[str, ...] = ()


@dataclass(frozen=True)
class MissionConfig:
    """A whole mission file, validated and cross-checked."""

    name: str
    base_dir: Path
    runtime: RuntimeConfig
    signals: tuple[SignalSpec, ...]
    models: tuple[ModelConfig, ...]
    tasks: tuple[TaskConfig, ...]
    guards: tuple[GuardConfig, ...] = ()
    safe: SafeConfig = field(default_factory=SafeConfig)
    source: SourceConfig | None = None
    bus: BusConfig | None = None
    bundle: BundleConfig = field(default_factory=BundleConfig)

    def signal(self, name: str) -> SignalSpec:
        """Return the signal called ``name``, or the int64 [1] spec of a ``sig@t_ns`` tag."""
        base = time_tagged(name)
        if base is not None:
            return SignalSpec(name=name, dtype="int64", shape=(1,))
        return next(s for s in self.signals if s.name == name)

    def model(self, name: str) -> ModelConfig:
        """Return the model called ``name``."""
        return next(m for m in self.models if m.name == name)

    def task(self, name: str) -> TaskConfig:
        """Return the task called ``name``."""
        return next(t for t in self.tasks if t.name == name)

    @property
    def periodic_tasks(self) -> tuple[TaskConfig, ...]:
        """Tasks with a rate of their own, in config (publication) order."""
        return tuple(t for t in self.tasks if not t.fallback_only)
