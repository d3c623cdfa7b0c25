"""``flightai profile``: measure each model (and Python task) on this board for timing admission.

Each model runs as in flight: hash-verified bytes, its configured providers
and pinned session options, I/O binding on reused buffers, warmed up first.
Inputs are drawn from one seeded generator within the declared dtypes and
shapes, so two profiles of the same mission feed the same values. Python tasks
are timed the way the executive times them (:meth:`BoundTask.execute`) on
inputs drawn the same way; such inputs are plausible in dtype and shape only,
so a task whose cost depends on its values is measured on those values.

The profile holds the board fingerprint, and each model's hash, running
providers and options: :mod:`flightai.admission` refuses it anywhere else.
"""

from __future__ import annotations

import gc
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from flightai.config.schema import MissionConfig, ModelConfig, PortSpec
from flightai.errors import ProfileError
from flightai.fingerprint import fingerprint
from flightai.infer.model_task import ModelTask
from flightai.infer.providers import require_engines
from flightai.infer.session import build_session, read_verified
from flightai.runtime import python_task
from flightai.sched.bound import BoundTask, TaskFault
from flightai.sched.task import Arrays

FORMAT = "flightai-profile/1"
_INPUT_SETS = 8  # distinct input sets cycled through, so no cache sees one value only
T = TypeVar("T")


@dataclass(frozen=True)
class Timing:
    """Latency of one model or task over ``runs`` calls after warm-up (integer ns)."""

    runs: int
    p50_ns: int
    p99_ns: int
    p999_ns: int
    max_ns: int

    @classmethod
    def of(cls, samples_ns: list[int]) -> Timing:
        """Nearest-rank percentiles of ``samples_ns`` (no interpolation: a measured value)."""
        ordered = sorted(samples_ns)

        def rank(q: float) -> int:
            return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

        return cls(len(ordered), rank(0.50), rank(0.99), rank(0.999), ordered[-1])


@dataclass(frozen=True)
class ModelProfile:
    """One model's timing and what it ran on: hash, providers, pinned options."""

    sha256: str
    requested: tuple[str, ...]
    running: tuple[str, ...]
    fallback: bool
    options: dict[str, str]
    timing: Timing


@dataclass(frozen=True)
class TaskProfile:
    """One Python task's timing, or why it could not be timed (``error``)."""

    body: str
    timing: Timing | None
    error: str = ""


@dataclass(frozen=True)
class Profile:
    """A timing profile of one mission on one board."""

    mission: str
    fingerprint: dict[str, str]
    models: dict[str, ModelProfile]
    tasks: dict[str, TaskProfile]
    seed: int

    def to_json(self) -> str:
        """The profile as a JSON document."""
        return json.dumps({"format": FORMAT, **asdict(self)}, indent=2) + "\n"


def draw(rng: np.random.Generator, dtype: str,
         shape: tuple[int, ...]) -> npt.NDArray[np.generic]:
    """A value of ``dtype`` and ``shape``: floats in [-1, 1), integers in [0, 16), booleans."""
    kind = np.dtype(dtype).kind
    if kind == "f":
        return rng.uniform(-1.0, 1.0, shape).astype(dtype)
    if kind == "b":
        return rng.random(shape) < 0.5
    return rng.integers(0, 16, shape).astype(dtype)


def _time_calls(call: Callable[[T], object], inputs: Sequence[T], runs: int,
                warmup: int) -> Timing:
    for i in range(warmup):
        call(inputs[i % len(inputs)])
    samples = [0] * runs
    gc.collect()
    gc.disable()  # the runtime freezes the collector around the frame loop, too
    try:
        for i in range(runs):
            start_ns = time.perf_counter_ns()
            call(inputs[i % len(inputs)])
            samples[i] = time.perf_counter_ns() - start_ns
    finally:
        gc.enable()
    return Timing.of(samples)


def _port_values(rng: np.random.Generator, ports: tuple[PortSpec, ...]) -> list[Arrays]:
    return [{p.name: draw(rng, p.dtype, p.shape) for p in ports} for _ in range(_INPUT_SETS)]


def profile_model(config: ModelConfig, runs: int, rng: np.random.Generator, *,
                  build_engines: bool = False) -> ModelProfile:
    """Load one model as in flight and time ``runs`` calls after its warm-up.

    Raises:
        ModelError: the model is refused (hash, signature, provider, engine cache).
    """
    session, report = build_session(config, read_verified(config), build_engines=build_engines)
    if build_engines:
        require_engines(config, list(report.running))  # the engines are there now
    model = ModelTask(config, session, report)
    timing = _time_calls(model.run, _port_values(rng, config.inputs), runs,
                         max(config.warmup_runs, 10))
    return ModelProfile(report.sha256, report.requested, report.running, report.fallback,
                        dict(report.options), timing)


def profile_task(mission: MissionConfig, name: str, runs: int,
                 rng: np.random.Generator) -> TaskProfile:
    """Time a Python task as the executive does, on drawn inputs; a fault is reported."""
    config = mission.task(name)
    body = config.function or config.factory or ""
    bound = BoundTask(config, python_task(mission, config), mission)
    snapshots = [{sig: draw(rng, mission.signal(sig).dtype, mission.signal(sig).shape)
                  for _, sig in bound.config.inputs} for _ in range(_INPUT_SETS)]
    try:
        timing = _time_calls(bound.execute, snapshots, runs, 10)
    except TaskFault as fault:
        return TaskProfile(body, None, f"not timed: it fails on drawn inputs: {fault}")
    return TaskProfile(body, timing)


def profile_mission(config: MissionConfig, runs: int = 2000, seed: int = 0, *,
                    build_engines: bool = False, python_tasks: bool = True,
                    progress: Callable[[str], None] = lambda line: None) -> Profile:
    """Profile every model (and, unless told not to, every Python task) of a mission.

    Args:
        config: the validated mission.
        runs: timed calls per model or task, after warm-up (p99.9 needs >= 1000).
        seed: seed of the one generator all inputs are drawn from.
        build_engines: let TensorRT build its engine cache (on the board, before flight).
        python_tasks: also time the Python tasks.
        progress: called with one line per model or task as it is done.

    Raises:
        ModelError: a model is refused.
        TaskError: a Python task cannot be imported or built.
    """
    if runs < 1:
        raise ProfileError(f"--runs: expected at least 1 timed call, got {runs}")
    rng = np.random.default_rng(seed)
    models: dict[str, ModelProfile] = {}
    for model in config.models:
        models[model.name] = profile_model(model, runs, rng, build_engines=build_engines)
        progress(describe(model.name, models[model.name].timing,
                          ", ".join(models[model.name].running)))
    tasks: dict[str, TaskProfile] = {}
    for task in config.tasks if python_tasks else ():
        if task.model is None:
            tasks[task.name] = profile_task(config, task.name, runs, rng)
            entry = tasks[task.name]
            progress(describe(task.name, entry.timing, "python") if entry.timing
                     else f"{task.name}: {entry.error}")
    return Profile(config.name, fingerprint(), models, tasks, seed)


def describe(name: str, timing: Timing, where: str) -> str:
    """One line: name, p50/p99/p99.9/max in microseconds, and what ran it."""
    us = [f"{v / 1000:.1f}" for v in (timing.p50_ns, timing.p99_ns, timing.p999_ns,
                                      timing.max_ns)]
    return (f"{name}: p50 {us[0]} us, p99 {us[1]} us, p99.9 {us[2]} us, max {us[3]} us "
            f"({timing.runs} runs, {where})")


def _timing(data: Mapping[str, Any]) -> Timing:
    return Timing(**{k: int(data[k]) for k in ("runs", "p50_ns", "p99_ns", "p999_ns", "max_ns")})


def read_profile(path: Path) -> Profile:
    """Read a profile written by :meth:`Profile.to_json`.

    Raises:
        ProfileError: unreadable, not JSON, another format, or a missing field.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"profile {path}: cannot read it: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ProfileError(f"profile {path}: not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ProfileError(f"profile {path}: expected format {FORMAT!r}, got {found!r}")
    try:
        models = {name: ModelProfile(m["sha256"], tuple(m["requested"]), tuple(m["running"]),
                                     bool(m["fallback"]), dict(m["options"]),
                                     _timing(m["timing"]))
                  for name, m in data["models"].items()}
        tasks = {name: TaskProfile(t["body"], _timing(t["timing"]) if t["timing"] else None,
                                   t.get("error", ""))
                 for name, t in data["tasks"].items()}
        return Profile(str(data["mission"]), dict(data["fingerprint"]), models, tasks,
                       int(data["seed"]))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ProfileError(f"profile {path}: malformed: {type(exc).__name__}: {exc}") from exc

