"""The fault plan: a seeded list of faults, read strictly from TOML.

A plan file::

    seed = 7                       # the plan's root seed

    [[faults]]
    name = "alt-stuck"             # unique; names the fault's own random stream
    kind = "stuck"                 # see KINDS
    target = "altimeter.range"     # an input signal, a task, or "*" (transport: every sensor topic)
    start_ms = 20000               # mission time, included
    end_ms = 25000                 # excluded; omitted: to the end of the run
    probability = 1.0              # per sample, message or release in the window
    params = { value = [1500.0] }  # kind-specific

Each fault draws from ``SeedSequence(seed, spawn_key=(crc32(name),))``: its
stream depends on the plan's seed and its own name only, so adding, removing
or reordering faults never shifts another fault's draws. Errors name the key
path, as mission errors do (``faults[2].params.sigma: expected a number > 0,
got -1``).
"""

from __future__ import annotations

import enum
import math
import sys
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flightai.config.schema import MissionConfig
from flightai.errors import ConfigError
from flightai.timebase import NS_PER_MS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

ALL_TOPICS = "*"


class Layer(enum.Enum):
    """Where a fault acts."""

    SENSOR = "sensor"        # a sensor's samples, before they are encoded
    TRANSPORT = "transport"  # encoded multipart messages on the wire
    MODEL = "model"          # a task's jobs in the runtime


class Kind(enum.Enum):
    """Fault kinds."""

    DROPOUT = "dropout"
    STUCK = "stuck"
    BIAS = "bias"
    NOISE = "noise"
    DELAY = "delay"
    OUT_OF_ORDER = "out_of_order"
    CORRUPT = "corrupt"
    DROP = "drop"
    DUPLICATE = "duplicate"
    REORDER = "reorder"
    NAN = "nan"
    OVERRUN = "overrun"


class Corruption(enum.Enum):
    """How a corrupt frame is broken (each the wire decoder's refusal reason)."""

    TRUNCATE = "truncate"        # array frame one byte short: bad_frame_length
    BAD_MSGPACK = "bad_msgpack"  # header bytes that are not msgpack: malformed
    WRONG_DTYPE = "wrong_dtype"  # array sent as another dtype: bad_dtype
    WRONG_SHAPE = "wrong_shape"  # array sent flattened with one extra element: bad_shape
    EXTRA_FRAME = "extra_frame"  # one frame too many: bad_frame_count


#: kind -> (layer, {param: required})
_PARAMS: dict[Kind, tuple[Layer, dict[str, bool]]] = {
    Kind.DROPOUT: (Layer.SENSOR, {}),
    Kind.STUCK: (Layer.SENSOR, {"value": False}),
    Kind.BIAS: (Layer.SENSOR, {"offset": True}),
    Kind.NOISE: (Layer.SENSOR, {"sigma": True}),
    Kind.DELAY: (Layer.SENSOR, {"delay_ms": True}),
    Kind.OUT_OF_ORDER: (Layer.SENSOR, {}),
    Kind.CORRUPT: (Layer.TRANSPORT, {"modes": False}),
    Kind.DROP: (Layer.TRANSPORT, {}),
    Kind.DUPLICATE: (Layer.TRANSPORT, {}),
    Kind.REORDER: (Layer.TRANSPORT, {}),
    Kind.NAN: (Layer.MODEL, {}),
    Kind.OVERRUN: (Layer.MODEL, {"overrun_kind": False}),
}
_KEYS = ("end_ms", "kind", "name", "params", "probability", "start_ms", "target")


@dataclass(frozen=True)
class Fault:
    """One fault of a plan (times in ns of mission time).

    Attributes:
        name: unique within the plan; keys its random stream.
        kind: what it does.
        target: the input signal (sensor, transport; ``*`` for every sensor topic)
            or the periodic task (model) it acts on.
        start_ns: first instant it acts at (included).
        end_ns: where it stops (excluded); None: never.
        probability: chance it acts on each sample, message or release in the window.
        params: kind-specific values, checked (numbers as float, lists as tuples).
        seed: the plan's root seed.
    """

    name: str
    kind: Kind
    target: str
    start_ns: int
    end_ns: int | None
    probability: float
    params: Mapping[str, Any]
    seed: int

    @property
    def layer(self) -> Layer:
        """Sensor, transport or model."""
        return _PARAMS[self.kind][0]

    def active(self, t_ns: int) -> bool:
        """Whether ``t_ns`` is in the fault's window."""
        return self.start_ns <= t_ns and (self.end_ns is None or t_ns < self.end_ns)

    def matches(self, topic: str) -> bool:
        """Whether it targets ``topic`` (``*`` matches every sensor topic)."""
        return self.target in (topic, ALL_TOPICS)

    def rng(self) -> np.random.Generator:
        """A fresh generator on this fault's own stream (plan seed, crc32 of the name)."""
        sequence = np.random.SeedSequence(self.seed,
                                          spawn_key=(zlib.crc32(self.name.encode()),))
        return np.random.default_rng(sequence)


@dataclass(frozen=True)
class FaultPlan:
    """A seeded list of faults, and the TOML text it was read from (kept in recordings)."""

    seed: int
    faults: tuple[Fault, ...]
    text: str = ""
    path: str = field(default="<plan>")

    def of(self, layer: Layer) -> tuple[Fault, ...]:
        """The faults acting at one layer, in plan order."""
        return tuple(f for f in self.faults if f.layer is layer)

    def check_against(self, config: MissionConfig) -> None:
        """Check every target against the mission: input signals, or periodic tasks.

        Raises:
            ConfigError: a target the mission does not have, or a value fault
                (bias, noise) on a signal that is not floating point.
        """
        inputs = {s.name: s for s in config.signals if s.input}
        tasks = {t.name for t in config.periodic_tasks}
        for i, fault in enumerate(self.faults):
            where = f"faults[{i}].target"
            if fault.layer is Layer.MODEL:
                if fault.target not in tasks:
                    raise ConfigError(where, f"a periodic task of {config.name} "
                                      f"({', '.join(sorted(tasks))})", repr(fault.target))
            elif fault.target == ALL_TOPICS and fault.layer is Layer.TRANSPORT:
                continue
            elif fault.target not in inputs:
                raise ConfigError(where, f"an input signal of {config.name} "
                                  f"({', '.join(sorted(inputs))})", repr(fault.target))
            elif fault.kind in (Kind.BIAS, Kind.NOISE) and \
                    np.dtype(inputs[fault.target].dtype).kind != "f":
                raise ConfigError(where, f"a floating-point signal for {fault.kind.value}",
                                  f"{fault.target!r} ({inputs[fault.target].dtype})")
            size = math.prod(inputs[fault.target].shape) if fault.target in inputs else 1
            for key in ("value", "offset"):
                numbers = fault.params.get(key, ())
                if len(numbers) not in (0, 1, size):
                    raise ConfigError(f"faults[{i}].params.{key}", "one number or one per "
                                      f"element of {fault.target} ({size})",
                                      f"{len(numbers)} numbers")


def load_plan(path: str | Path) -> FaultPlan:
    """Read a plan file.

    Raises:
        ConfigError: unreadable, not TOML, or invalid (the message names the key path).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(str(path), "a readable TOML fault plan", str(exc)) from None
    return parse_plan(data, text, str(path))


def parse_plan(data: Mapping[str, Any], text: str = "", path: str = "<plan>") -> FaultPlan:
    """Validate a parsed plan document (see the module's description)."""
    _known(data, "<plan>", ("faults", "seed"))
    seed = data.get("seed")
    if type(seed) is not int or seed < 0:
        raise ConfigError("seed", "an integer >= 0", _show(seed))
    entries = data.get("faults", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError("faults", "an array of tables ([[faults]])", _show(entries))
    faults = tuple(_fault(entry, f"faults[{i}]", seed) for i, entry in enumerate(entries))
    names = [f.name for f in faults]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"faults[{i}].name", "a name unique in the plan", repr(name))
    return FaultPlan(seed, faults, text, path)


def _fault(entry: Mapping[str, Any], where: str, seed: int) -> Fault:
    _known(entry, where, _KEYS)
    name = _string(entry, "name", where)
    kinds = {k.value: k for k in Kind}
    kind_name = entry.get("kind")
    if kind_name not in kinds:
        raise ConfigError(f"{where}.kind", f"one of {', '.join(kinds)}", _show(kind_name))
    kind = kinds[kind_name]
    target = _string(entry, "target", where)
    if target == ALL_TOPICS and _PARAMS[kind][0] is not Layer.TRANSPORT:
        raise ConfigError(f"{where}.target", f"a signal or task name ('*' is for transport "
                          f"faults only, not {kind.value})", "'*'")
    start_ms = entry.get("start_ms", 0)
    if type(start_ms) is not int or start_ms < 0:
        raise ConfigError(f"{where}.start_ms", "an integer >= 0 (ms)", _show(start_ms))
    end_ms = entry.get("end_ms")
    if end_ms is not None and (type(end_ms) is not int or end_ms <= start_ms):
        raise ConfigError(f"{where}.end_ms", f"an integer > start_ms ({start_ms})",
                          _show(end_ms))
    probability = entry.get("probability", 1.0)
    if type(probability) not in (int, float) or not 0.0 < probability <= 1.0:
        raise ConfigError(f"{where}.probability", "a number in (0, 1]", _show(probability))
    params = entry.get("params", {})
    if not isinstance(params, dict):
        raise ConfigError(f"{where}.params", "a table", _show(params))
    return Fault(name, kind, target, start_ms * NS_PER_MS,
                 None if end_ms is None else end_ms * NS_PER_MS, float(probability),
                 _params(kind, params, f"{where}.params"), seed)


def _params(kind: Kind, params: Mapping[str, Any], where: str) -> dict[str, Any]:
    allowed = _PARAMS[kind][1]
    _known(params, where, tuple(allowed))
    for key, required in allowed.items():
        if required and key not in params:
            raise ConfigError(f"{where}.{key}", f"a value (required for {kind.value})",
                              "nothing")
    checked: dict[str, Any] = {}
    for key, value in params.items():
        path = f"{where}.{key}"
        if key in ("value", "offset"):
            checked[key] = _numbers(value, path)
        elif key == "sigma":
            if not _number(value) or value <= 0:
                raise ConfigError(path, "a number > 0", _show(value))
            checked[key] = float(value)
        elif key == "delay_ms":
            if type(value) is not int or value < 1:
                raise ConfigError(path, "an integer >= 1 (ms)", _show(value))
            checked[key] = value
        elif key == "modes":
            names = {c.value: c for c in Corruption}
            if not isinstance(value, list) or not value or any(v not in names for v in value):
                raise ConfigError(path, f"a non-empty array of {', '.join(names)}", _show(value))
            checked[key] = tuple(names[v] for v in value)
        elif key == "overrun_kind":
            if value not in ("late", "not_started"):
                raise ConfigError(path, "'late' or 'not_started'", _show(value))
            checked[key] = value
    return checked


def _numbers(value: Any, path: str) -> tuple[float, ...]:
    """A finite number or an array of them (broadcast over the signal's value)."""
    items = value if isinstance(value, list) else [value]
    if not items or not all(_number(v) for v in items):
        raise ConfigError(path, "a finite number or a non-empty array of them", _show(value))
    return tuple(float(v) for v in items)


def _number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _string(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}.{key}", "a non-empty string", _show(value))
    return value


def _known(table: Mapping[str, Any], where: str, keys: tuple[str, ...]) -> None:
    for key in table:
        if key not in keys:
            prefix = "" if where == "<plan>" else f"{where}."
            raise ConfigError(f"{prefix}{key}", f"a key of {where} ({', '.join(keys)})",
                              f"unknown key {key!r}")


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    return f"{value!r} ({type(value).__name__})"
