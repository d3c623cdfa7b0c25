"""Load a mission TOML file into a validated :class:`MissionConfig`.

Every refusal is a :class:`ConfigError` naming the key path, the expected value
and what was found. Cross-references (signals, models, fallbacks) are checked
here; timing feasibility is checked by :mod:`flightai.sched.table`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flightai.config.deployment import read_admission, read_process, read_provider_options
from flightai.config.overrides import apply_overrides
from flightai.config.reader import Table, describe
from flightai.config.schema import (
    BundleConfig,
    BusConfig,
    ClockKind,
    CommandClass,
    CurveClient,
    CurveConfig,
    ExecutionMode,
    ExternalClockConfig,
    GraphOptimization,
    GuardConfig,
    LateJobs,
    MissionConfig,
    ModelConfig,
    Placement,
    Policy,
    PortSpec,
    RuntimeConfig,
    SafeConfig,
    SignalSpec,
    SourceConfig,
    TaskConfig,
    time_tagged,
)
from flightai.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64",
          "uint8", "uint16", "uint32", "uint64", "bool")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TARGET = re.compile(r"^[^:]+:[A-Za-z_][A-Za-z0-9_.]*$")


def load_mission(path: str | Path, overrides: Sequence[str] = ()) -> MissionConfig:
    """Read and validate a mission file.

    Args:
        path: the TOML file; relative model and code paths resolve from its folder.
        overrides: ``key.path=value`` items applied before validation
            (see :mod:`flightai.config.overrides`).

    Raises:
        ConfigError: naming the first bad key (or ``<file>`` for unreadable TOML).
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), "a readable mission file", exc.strerror or str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), "a UTF-8 text file", str(exc)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "valid TOML", str(exc)) from exc
    return parse_mission(apply_overrides(data, overrides), path.resolve().parent)


def parse_mission(data: Mapping[str, Any], base_dir: Path) -> MissionConfig:
    """Validate an already-parsed mission document; paths resolve from ``base_dir``."""
    root = Table(data, "")
    mission = root.table("mission", required=True)
    name = _name(mission, "name")
    mission.finish()
    runtime = _runtime(root.table("runtime", required=True))
    signals = tuple(_signal(t) for t in root.tables("signals", required=True))
    models = tuple(_model(t, base_dir) for t in root.tables("models"))
    tasks = tuple(_task(t, runtime) for t in root.tables("tasks", required=True))
    guards = tuple(_guard(t) for t in root.tables("guards"))
    safe = _safe(root.table("safe"))
    source_table = root.table("source")  # read even when absent: a known key of the root
    source = _source(source_table) if root.has("source") else None
    bus_table = root.table("bus")
    bus = _bus(bus_table, base_dir) if root.has("bus") else None
    bundle = _bundle(root.table("bundle"))
    root.finish()
    config = MissionConfig(name=name, base_dir=base_dir, runtime=runtime, signals=signals,
                           models=models, tasks=tasks, guards=guards, safe=safe, source=source,
                           bus=bus, bundle=bundle)
    _cross_check(config)
    return config


def _name(table: Table, key: str) -> str:
    value: str = table.string(key)
    if not _NAME.match(value):
        raise ConfigError(table.key_path(key),
                          "a name of letters, digits, '_', '.', '-' starting with a letter or '_'",
                          describe(value))
    return value


def _runtime(t: Table) -> RuntimeConfig:
    ext = t.table("external")
    external = ExternalClockConfig(
        tick_timeout_ms=ext.integer("tick_timeout_ms", 500, minimum=1),
        late_jobs=ext.choice("late_jobs", LateJobs, LateJobs.WAIT),
    )
    ext.finish()
    process = read_process(t.table("process"))
    admission = read_admission(t.table("admission"))
    config = RuntimeConfig(
        minor_frame_ms=t.integer("minor_frame_ms", minimum=1, maximum=60_000),
        clock=t.choice("clock", ClockKind, ClockKind.WALL),
        workers=t.integer("workers", 2, minimum=1, maximum=64),
        duration_ms=t.integer("duration_ms", 0, minimum=0),
        spin_us=t.integer("spin_us", 1000, minimum=0, maximum=100_000),
        freeze_gc=t.boolean("freeze_gc", True),
        external=external,
        process=process,
        admission=admission,
    )
    t.finish()
    return config


def _dtype(t: Table, key: str) -> str:
    value: str = t.string(key)
    if value not in DTYPES:
        raise ConfigError(t.key_path(key), "one of " + ", ".join(DTYPES), describe(value))
    return value


def _signal(t: Table) -> SignalSpec:
    spec = SignalSpec(name=_name(t, "name"), dtype=_dtype(t, "dtype"), shape=t.shape("shape"),
                      input=t.boolean("input", False),
                      max_age_ms=t.integer("max_age_ms", 0, minimum=0))
    if spec.max_age_ms and not spec.input:
        raise ConfigError(t.key_path("max_age_ms"),
                          "no max_age_ms on a signal that is not an input", str(spec.max_age_ms))
    t.finish()
    return spec


_ENDPOINT = re.compile(r"^(tcp://[^\s]+:\d+|ipc://[^\s]+|inproc://[^\s]+)$")
_Z85 = re.compile(r"^[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$")


def _endpoint(t: Table, key: str, default: str) -> str:
    value: str = t.string(key, default)
    if not _ENDPOINT.match(value):
        raise ConfigError(t.key_path(key), "a ZeroMQ endpoint 'tcp://host:port', 'ipc://path' "
                          "or 'inproc://name'", describe(value))
    return value


def _bus(t: Table, base_dir: Path) -> BusConfig:
    curve_table = t.table("curve")  # read even when absent: a known key of [bus]
    curve = _curve(curve_table, base_dir) if t.has("curve") else None
    config = BusConfig(
        sensors=_endpoint(t, "sensors", BusConfig.sensors),
        outputs=_endpoint(t, "outputs", BusConfig.outputs),
        commands=_endpoint(t, "commands", BusConfig.commands),
        max_message_bytes=t.integer("max_message_bytes", BusConfig.max_message_bytes,
                                    minimum=1024, maximum=1 << 30),
        health_period_ms=t.integer("health_period_ms", BusConfig.health_period_ms, minimum=1),
        sensor_hwm=t.integer("sensor_hwm", BusConfig.sensor_hwm, minimum=1),
        output_hwm=t.integer("output_hwm", BusConfig.output_hwm, minimum=1),
        max_buffered_bytes=t.integer("max_buffered_bytes", BusConfig.max_buffered_bytes,
                                     minimum=1024),
        curve=curve,
    )
    endpoints = [config.sensors, config.outputs, config.commands]
    if len(set(endpoints)) != 3:
        raise ConfigError(t.key_path("commands"), "three different endpoints",
                          ", ".join(endpoints))
    t.finish()
    return config


def _curve(t: Table, base_dir: Path) -> CurveConfig:
    secret = base_dir / t.string("server_secret_key_file")
    clients = []
    for c in t.tables("clients", required=True):
        key: str = c.string("public_key")
        if not _Z85.match(key):
            raise ConfigError(c.key_path("public_key"), "a Z85 CURVE public key (40 characters)",
                              describe(key))
        names = c.strings("commands", ("read",))
        allowed = [m.value for m in CommandClass]
        for i, name in enumerate(names):
            if name not in allowed:
                raise ConfigError(f"{c.key_path('commands')}[{i}]",
                                  "one of " + ", ".join(repr(a) for a in allowed), repr(name))
        clients.append(CurveClient(name=_name(c, "name"), public_key=key,
                                   commands=tuple(CommandClass(n) for n in names)))
        c.finish()
    if not clients:
        raise ConfigError(t.key_path("clients"), "at least one allowed client", "none")
    t.finish()
    return CurveConfig(server_secret_key_file=secret, clients=tuple(clients))


def _port(t: Table) -> PortSpec:
    spec = PortSpec(name=t.string("name"), dtype=_dtype(t, "dtype"), shape=t.shape("shape"))
    t.finish()
    return spec


def _model(t: Table, base_dir: Path) -> ModelConfig:
    name = _name(t, "name")
    file = base_dir / t.string("file")
    sha = t.string("sha256")
    if not _SHA256.match(sha):
        raise ConfigError(t.key_path("sha256"), "64 lowercase hex digits", describe(sha))
    providers = t.strings("providers", ("CPUExecutionProvider",), non_empty=True)
    config = ModelConfig(
        name=name, file=file, sha256=sha,
        inputs=tuple(_port(p) for p in t.tables("inputs", required=True)),
        outputs=tuple(_port(p) for p in t.tables("outputs", required=True)),
        providers=providers,
        provider_options=read_provider_options(t.table("provider_options"), providers, base_dir),
        allow_fallback=t.boolean("allow_fallback", True),
        intra_op_threads=t.integer("intra_op_threads", 1, minimum=1, maximum=64),
        inter_op_threads=t.integer("inter_op_threads", 1, minimum=1, maximum=64),
        spinning=t.boolean("spinning", False),
        graph_optimization=t.choice("graph_optimization", GraphOptimization, GraphOptimization.ALL),
        execution_mode=t.choice("execution_mode", ExecutionMode, ExecutionMode.SEQUENTIAL),
        deterministic_compute=t.boolean("deterministic_compute", True),
        warmup_runs=t.integer("warmup_runs", 5, minimum=0, maximum=10_000),
    )
    t.finish()
    return config


def _port_map(t: Table, key: str) -> tuple[tuple[str, str], ...]:
    table = t.table(key, required=True)
    pairs = tuple((port, table.string(port)) for port in table.names())
    table.finish()
    return pairs


def _params(t: Table) -> tuple[tuple[str, Any], ...]:
    table = t.table("params")
    pairs = tuple((k, table.raw(k)) for k in table.names())
    table.finish()
    return pairs


def _target(t: Table, key: str) -> str | None:
    value: str | None = t.string(key, None)
    if value is not None and not _TARGET.match(value):
        raise ConfigError(t.key_path(key), "'module.path:name' or 'file.py:name'", describe(value))
    return value


def _task(t: Table, runtime: RuntimeConfig) -> TaskConfig:
    name = _name(t, "name")
    model = t.string("model", None)
    function = _target(t, "function")
    factory = _target(t, "factory")
    kinds = [k for k, v in (("model", model), ("function", function), ("factory", factory))
             if v is not None]
    if len(kinds) != 1:
        raise ConfigError(t.path,
                          "exactly one of model, function, factory", ", ".join(kinds) or "none")
    fallback_only = t.boolean("fallback_only", False)
    frame = runtime.minor_frame_ms
    if fallback_only:
        for key in ("period_ms", "offset_ms", "deadline_ms", "fallback", "on_overrun", "on_guard"):
            if t.has(key):
                raise ConfigError(t.key_path(key), "no value on a fallback_only task",
                                  describe(t.raw(key)))
        period = offset = deadline = 0
    else:
        period = t.integer("period_ms", minimum=1)
        if period % frame:
            raise ConfigError(t.key_path("period_ms"),
                              f"a multiple of runtime.minor_frame_ms ({frame})", str(period))
        offset = t.integer("offset_ms", 0, minimum=0)
        if offset % frame or offset >= period:
            raise ConfigError(t.key_path("offset_ms"),
                              f"a multiple of runtime.minor_frame_ms ({frame}) below period_ms "
                              f"({period})", str(offset))
        deadline = t.integer("deadline_ms", period, minimum=1)
        if deadline % frame or deadline > period:
            raise ConfigError(t.key_path("deadline_ms"),
                              f"a multiple of runtime.minor_frame_ms ({frame}) up to period_ms "
                              f"({period})", str(deadline))
    config = TaskConfig(
        name=name, inputs=_port_map(t, "inputs"), outputs=_port_map(t, "outputs"),
        period_ms=period, offset_ms=offset, deadline_ms=deadline,
        budget_us=t.integer("budget_us", 0, minimum=0),
        model=model, function=function, factory=factory, params=_params(t),
        placement=t.choice("placement", Placement, Placement.FRAME),
        on_overrun=t.choice("on_overrun", Policy, Policy.HOLD),
        on_guard=t.choice("on_guard", Policy, Policy.HOLD),
        fallback=t.string("fallback", None), fallback_only=fallback_only,
    )
    if not config.outputs:
        raise ConfigError(t.key_path("outputs"), "at least one output port", "none")
    if config.params and factory is None:
        raise ConfigError(t.key_path("params"), "no params on a model or function task "
                          "(only a factory takes params)", describe(dict(config.params)))
    t.finish()
    return config


def _guard(t: Table) -> GuardConfig:
    config = GuardConfig(signal=t.string("signal"), finite=t.boolean("finite", True),
                         min=t.number("min", None), max=t.number("max", None),
                         max_step=t.number("max_step", None))
    if config.min is not None and config.max is not None and config.min > config.max:
        raise ConfigError(t.key_path("max"), f"a value >= min ({config.min})", str(config.max))
    if config.max_step is not None and config.max_step <= 0:
        raise ConfigError(t.key_path("max_step"), "a positive number", str(config.max_step))
    t.finish()
    return config


def _safe(t: Table) -> SafeConfig:
    config = SafeConfig(on_fallback=t.boolean("on_fallback", False),
                        on_guard_trip=t.boolean("on_guard_trip", False),
                        on_tick_timeout=t.boolean("on_tick_timeout", True),
                        after_consecutive_overruns=t.integer("after_consecutive_overruns", 0,
                                                             minimum=0))
    t.finish()
    return config


def _source(t: Table) -> SourceConfig:
    factory = _target(t, "factory")
    if factory is None:
        raise ConfigError(t.key_path("factory"), "a value (this key is required)", "nothing")
    config = SourceConfig(factory=factory, params=_params(t))
    t.finish()
    return config


def _bundle(t: Table) -> BundleConfig:
    include = t.strings("include", ())
    for i, item in enumerate(include):
        parts = item.split("/")
        if item.startswith("/") or "\\" in item or any(p in ("", ".", "..") for p in parts):
            raise ConfigError(f"{t.key_path('include')}[{i}]", "a path relative to the mission "
                              "folder, inside it ('/' separators, no '..')", repr(item))
    t.finish()
    return BundleConfig(include=include)


def _unique(items: list[str], path: str, what: str) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item in seen:
            raise ConfigError(f"{path}[{i}].name", f"a {what} name not used before", repr(item))
        seen.add(item)


def _cross_check(c: MissionConfig) -> None:
    """Check the references between sections: signals, models, tasks, guards."""
    _unique([s.name for s in c.signals], "signals", "signal")
    _unique([m.name for m in c.models], "models", "model")
    _unique([t.name for t in c.tasks], "tasks", "task")
    signals = {s.name: s for s in c.signals}
    models = {m.name: m for m in c.models}
    tasks = {t.name: t for t in c.tasks}
    producers: dict[str, str] = {}
    fallback_of = {t.fallback: t.name for t in c.tasks if t.fallback}
    for i, task in enumerate(c.tasks):
        path = f"tasks[{i}]"
        for port, sig in task.inputs:
            if (time_tagged(sig) or sig) not in signals:
                raise ConfigError(f"{path}.inputs.{port}",
                                  "the name of a declared signal, or one followed by '@t_ns'",
                                  repr(sig))
        for port, sig in task.outputs:
            spec = signals.get(sig)
            if spec is None:
                raise ConfigError(f"{path}.outputs.{port}", "the name of a declared signal",
                                  repr(sig))
            if spec.input:
                raise ConfigError(f"{path}.outputs.{port}",
                                  "a signal that is not an input (input = true)", repr(sig))
            if not task.fallback_only:
                if sig in producers:
                    raise ConfigError(f"{path}.outputs.{port}",
                                      f"a signal no other task writes ({producers[sig]!r} does)",
                                      repr(sig))
                producers[sig] = task.name
        if task.model is not None:
            model = models.get(task.model)
            if model is None:
                raise ConfigError(f"{path}.model", "the name of a declared model", repr(task.model))
            _check_ports(path, task, model, signals)
        if task.fallback is not None:
            fb = tasks.get(task.fallback)
            if fb is None or not fb.fallback_only:
                raise ConfigError(f"{path}.fallback",
                                  "the name of a task with fallback_only = true",
                                  repr(task.fallback))
            if sorted(s for _, s in fb.outputs) != sorted(s for _, s in task.outputs):
                raise ConfigError(f"tasks[{c.tasks.index(fb)}].outputs",
                                  f"the same signals as task {task.name!r} writes",
                                  ", ".join(sorted(s for _, s in fb.outputs)))
        uses_fallback = Policy.FALLBACK in (task.on_overrun, task.on_guard)
        if uses_fallback and task.fallback is None:
            raise ConfigError(f"{path}.fallback",
                              "a fallback task when a policy is 'fallback'", "none")
        if task.fallback_only:
            if task.name not in fallback_of:
                raise ConfigError(f"{path}.fallback_only", "a task named by some task's fallback",
                                  "no task uses it")
            if task.placement is not Placement.FRAME:
                raise ConfigError(f"{path}.placement", "'frame' for a fallback_only task",
                                  repr(task.placement.value))
    for i, declared in enumerate(c.signals):
        if not declared.input and declared.name not in producers:
            raise ConfigError(f"signals[{i}].name", "a signal written by a task or input = true",
                              f"{declared.name!r}, which nothing writes")
    for i, guard in enumerate(c.guards):
        if guard.signal not in producers:
            raise ConfigError(f"guards[{i}].signal", "a signal written by a task",
                              repr(guard.signal))


def _check_ports(path: str, task: TaskConfig, model: ModelConfig,
                 signals: Mapping[str, SignalSpec]) -> None:
    """An ONNX task maps every model port to a signal of the same dtype and shape."""
    for key, mapping, ports in (("inputs", task.inputs, model.inputs),
                                ("outputs", task.outputs, model.outputs)):
        declared = {p.name: p for p in ports}
        mapped = dict(mapping)
        for port in mapped:
            if port not in declared:
                raise ConfigError(f"{path}.{key}.{port}",
                                  f"an {key[:-1]} port of model {model.name!r} ("
                                  + ", ".join(declared) + ")", repr(port))
        for port_name, spec in declared.items():
            if port_name not in mapped:
                raise ConfigError(f"{path}.{key}",
                                  f"a signal for model {key[:-1]} {port_name!r}", "none")
            sig = signals.get(mapped[port_name]) or SignalSpec(mapped[port_name], "int64", (1,))
            if (sig.dtype, sig.shape) != (spec.dtype, spec.shape):
                raise ConfigError(f"{path}.{key}.{port_name}",
                                  f"a signal of {spec.dtype}{list(spec.shape)} like the model port",
                                  f"{sig.name!r}: {sig.dtype}{list(sig.shape)}")
