"""Assemble a runnable executive from a mission config: tasks, clock, source."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from flightai.config.schema import ClockKind, LateJobs, MissionConfig, ModelConfig, TaskConfig
from flightai.errors import TaskError
from flightai.infer.model_task import ModelTask
from flightai.infer.session import SessionReport
from flightai.pytask import FactoryTask, FunctionTask, build_from_factory, load_object
from flightai.sched.clock import Clock, ExternalClock, FastClock, WallClock
from flightai.sched.executive import Executive, NanOutput, Overrun
from flightai.sched.io import InputSource, OutputSink
from flightai.sched.task import Task
from flightai.timebase import NS_PER_MS, NS_PER_US


@dataclass(frozen=True)
class LoadedTasks:
    """Every task's job body, and the session report of each model."""

    tasks: dict[str, Task]
    reports: dict[str, SessionReport]


ModelLoader = Callable[[str, ModelConfig], ModelTask]
"""Loads the model of a task: (task name, model config) -> model task."""


def _load_model(task: str, model: ModelConfig) -> ModelTask:
    return ModelTask.load(model)


def load_tasks(config: MissionConfig, load_model: ModelLoader = _load_model) -> LoadedTasks:
    """Build every task: models verified and loaded once each, callables imported.

    ``load_model`` may hand out already loaded models (a campaign worker's cache);
    Python tasks are always built afresh.

    Raises:
        ModelError: a model is refused (hash, signature, provider, onnxruntime).
        TaskError: a Python task cannot be imported or built.
    """
    reports: dict[str, SessionReport] = {}
    tasks: dict[str, Task] = {}
    for task in config.tasks:
        if task.model is not None:
            # One session per task, even for a shared model: two tasks' jobs may overlap.
            model = load_model(task.name, config.model(task.model))
            reports.setdefault(task.model, model.report)
            tasks[task.name] = model
        else:
            tasks[task.name] = python_task(config, task)
    return LoadedTasks(tasks, reports)


def python_task(config: MissionConfig, task: TaskConfig) -> Task:
    """The job body of a Python task: its function imported, or its factory called.

    Raises:
        TaskError: the target cannot be imported, is not callable, or its factory fails.
    """
    if task.function is not None:
        function = load_object(task.function, config.base_dir)
        if not callable(function):
            raise TaskError(f"{task.function}: not callable")
        return FunctionTask(task.function, function)
    assert task.factory is not None
    instance = build_from_factory(task.factory, config.base_dir, dict(task.params))
    return FactoryTask(task.factory, instance)


def make_clock(config: MissionConfig, kind: ClockKind | None = None) -> Clock:
    """The clock the config (or an override) asks for."""
    kind = kind or config.runtime.clock
    if kind is ClockKind.FAST:
        return FastClock()
    if kind is ClockKind.WALL:
        return WallClock(spin_ns=config.runtime.spin_us * NS_PER_US)
    ext = config.runtime.external
    return ExternalClock(ext.tick_timeout_ms * NS_PER_MS,
                         real_time=ext.late_jobs is LateJobs.OVERRUN)


def make_source(config: MissionConfig) -> InputSource | None:
    """The in-process input source the config names, if any."""
    if config.source is None:
        return None
    source: InputSource = build_from_factory(config.source.factory, config.base_dir,
                                             dict(config.source.params))
    if not callable(getattr(source, "poll", None)):
        raise TaskError(f"{config.source.factory}: the source has no poll(t_ns) method")
    return source


def build_executive(config: MissionConfig, *, clock: Clock | None = None,
                    source: InputSource | None = None, sinks: Sequence[OutputSink] = (),
                    workers: int | None = None, injected_overruns: Iterable[Overrun] = (),
                    injected_nan: Iterable[NanOutput] = (),
                    loaded: LoadedTasks | None = None) -> Executive:
    """Load tasks (unless given), build the executive and warm it up to READY."""
    loaded = loaded or load_tasks(config)
    executive = Executive(config, loaded.tasks, clock or make_clock(config),
                          source=source if source is not None else make_source(config),
                          sinks=sinks, workers=workers, injected_overruns=injected_overruns,
                          injected_nan=injected_nan)
    executive.warm_up()
    return executive
