"""Every refusal of the mission loader and the schedule table, one otherwise valid config each.

Each case starts from a small valid mission dict (``plain``, ``model``, ``fallback``,
``guard`` or ``source``), applies a few edits addressed by dotted key paths, and
checks the exact message: ``path: expected X, got Y``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from flightai.config.loader import load_mission, parse_mission
from flightai.errors import ConfigError, ScheduleError
from flightai.sched.table import build_table

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ltd1-lite" / "mission.toml"
BASE_DIR = Path("/nonexistent/mission")  # the loader never reads model files or code
FN = "os.path:join"  # a syntactically valid target; the loader does not import it
SHA = "0123456789abcdef" * 4
DROP = object()  # an edit value meaning "delete this key"

NAME_RULE = "a name of letters, digits, '_', '.', '-' starting with a letter or '_'"
DTYPES = ("float16, float32, float64, int8, int16, int32, int64, uint8, uint16, uint32, "
          "uint64, bool")
TARGET_RULE = "'module.path:name' or 'file.py:name'"
REQUIRED = "expected a value (this key is required), got nothing"


# -- valid starting points ----------------------------------------------------------------------

def _signal(name: str, *, input: bool = False, shape: list[int] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "dtype": "float32", "shape": shape or [1]}
    if input:
        spec["input"] = True
    return spec


def _task(name: str, **keys: Any) -> dict[str, Any]:
    task: dict[str, Any] = {"name": name, "function": FN, "period_ms": 20,
                            "inputs": {"a": "x"}, "outputs": {"b": "y"}}
    task.update(keys)
    return task


def plain() -> dict[str, Any]:
    """Input ``x`` -> function task ``t`` (20 ms) -> ``y``; 10 ms minor frame."""
    return {
        "mission": {"name": "m"},
        "runtime": {"minor_frame_ms": 10},
        "signals": [_signal("x", input=True), _signal("y")],
        "tasks": [_task("t")],
    }


def model() -> dict[str, Any]:
    """``plain`` with task ``t`` running model ``net`` (in: float32[1] -> out: float32[1])."""
    data = plain()
    data["models"] = [{
        "name": "net", "file": "net.onnx", "sha256": SHA,
        "inputs": [{"name": "in", "dtype": "float32", "shape": [1]}],
        "outputs": [{"name": "out", "dtype": "float32", "shape": [1]}],
    }]
    data["tasks"] = [{"name": "t", "model": "net", "period_ms": 20,
                      "inputs": {"in": "x"}, "outputs": {"out": "y"}}]
    return data


def fallback() -> dict[str, Any]:
    """``plain`` with ``t`` falling back on overrun to the fallback_only task ``fb``."""
    data = plain()
    data["tasks"] = [
        _task("t", on_overrun="fallback", fallback="fb"),
        {"name": "fb", "function": FN, "fallback_only": True,
         "inputs": {"a": "x"}, "outputs": {"b": "y"}},
    ]
    return data


def guard() -> dict[str, Any]:
    """``plain`` with a guard on ``y``."""
    data = plain()
    data["guards"] = [{"signal": "y", "min": -1.0, "max": 1.0, "max_step": 0.5}]
    return data


def source() -> dict[str, Any]:
    """``plain`` with an in-process source."""
    data = plain()
    data["source"] = {"factory": FN, "params": {"seed": 7}}
    data["safe"] = {"on_fallback": True}
    return data


def factory() -> dict[str, Any]:
    """``plain`` with ``t`` built by a factory from params."""
    data = plain()
    del data["tasks"][0]["function"]
    data["tasks"][0].update(factory="tasks.py:Filter", params={"gain": 0.5, "r0": [1.0, 2.0]})
    return data


BASES = {"plain": plain, "model": model, "fallback": fallback, "guard": guard, "source": source,
         "factory": factory}


def edited(base: str, edits: dict[str, Any]) -> dict[str, Any]:
    """A fresh copy of a base with edits applied.

    Keys are dotted paths (``tasks.0.period_ms``); a final ``+`` appends to an
    array (``signals.+``); the value :data:`DROP` deletes the key.
    """
    data = BASES[base]()
    for dotted, value in edits.items():
        *parents, last = dotted.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if last == "+":
            node.append(copy.deepcopy(value))
        elif value is DROP:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = copy.deepcopy(value)
    return data


@pytest.mark.parametrize("base", sorted(BASES))
def test_bases_are_valid(base: str) -> None:
    config = parse_mission(edited(base, {}), BASE_DIR)
    build_table(config)


def test_factory_params_are_kept_in_file_order() -> None:
    config = parse_mission(edited("factory", {}), BASE_DIR)
    assert config.tasks[0].params == (("gain", 0.5), ("r0", [1.0, 2.0]))
    assert config.tasks[0].factory == "tasks.py:Filter"


# -- loader refusals ------------------------------------------------------------------------------

def case(id: str, base: str, edits: dict[str, Any], message: str) -> Any:
    """One refusal: its id, start point, edits and the exact message."""
    return pytest.param(base, edits, message, id=id)


UNKNOWN_KEYS = [
    case("root", "plain", {"bogus": 1},
         "bogus: expected a key of the document (bundle, bus, guards, mission, models, runtime, "
         "safe, signals, source, tasks), got unknown key 'bogus'"),
    case("mission", "plain", {"mission.title": "x"},
         "mission.title: expected a key of mission (name), got unknown key 'title'"),
    case("runtime", "plain", {"runtime.minor_frame": 10},
         "runtime.minor_frame: expected a key of runtime (admission, clock, duration_ms, "
         "external, freeze_gc, minor_frame_ms, process, spin_us, workers), got unknown key "
         "'minor_frame'"),
    case("runtime.external", "plain", {"runtime.external": {"timeout_ms": 5}},
         "runtime.external.timeout_ms: expected a key of runtime.external (late_jobs, "
         "tick_timeout_ms), got unknown key 'timeout_ms'"),
    case("signals", "plain", {"signals.1.initial": 0},
         "signals[1].initial: expected a key of signals[1] (dtype, input, max_age_ms, name, "
         "shape), got unknown key 'initial'"),
    case("models", "model", {"models.0.threads": 2},
         "models[0].threads: expected a key of models[0] (allow_fallback, "
         "deterministic_compute, execution_mode, file, graph_optimization, inputs, "
         "inter_op_threads, intra_op_threads, name, outputs, provider_options, providers, "
         "sha256, spinning, warmup_runs), got unknown key 'threads'"),
    case("models.port", "model", {"models.0.outputs.0.layout": "nchw"},
         "models[0].outputs[0].layout: expected a key of models[0].outputs[0] (dtype, name, "
         "shape), got unknown key 'layout'"),
    case("tasks", "plain", {"tasks.0.priority": 1},
         "tasks[0].priority: expected a key of tasks[0] (budget_us, deadline_ms, factory, "
         "fallback, fallback_only, function, inputs, model, name, offset_ms, on_guard, "
         "on_overrun, outputs, params, period_ms, placement), got unknown key 'priority'"),
    case("guards", "guard", {"guards.0.nan_ok": True},
         "guards[0].nan_ok: expected a key of guards[0] (finite, max, max_step, min, signal), "
         "got unknown key 'nan_ok'"),
    case("safe", "plain", {"safe": {"on_overrun": True}},
         "safe.on_overrun: expected a key of safe (after_consecutive_overruns, on_fallback, "
         "on_guard_trip, on_tick_timeout), got unknown key 'on_overrun'"),
    case("source", "source", {"source.rate_hz": 100},
         "source.rate_hz: expected a key of source (factory, params), "
         "got unknown key 'rate_hz'"),
]

MISSING = [
    case("mission", "plain", {"mission": DROP}, f"mission: {REQUIRED}"),
    case("mission.name", "plain", {"mission.name": DROP}, f"mission.name: {REQUIRED}"),
    case("runtime", "plain", {"runtime": DROP}, f"runtime: {REQUIRED}"),
    case("runtime.minor_frame_ms", "plain", {"runtime.minor_frame_ms": DROP},
         f"runtime.minor_frame_ms: {REQUIRED}"),
    case("signals", "plain", {"signals": DROP}, f"signals: {REQUIRED}"),
    case("signals.name", "plain", {"signals.0.name": DROP}, f"signals[0].name: {REQUIRED}"),
    case("signals.dtype", "plain", {"signals.0.dtype": DROP}, f"signals[0].dtype: {REQUIRED}"),
    case("signals.shape", "plain", {"signals.1.shape": DROP}, f"signals[1].shape: {REQUIRED}"),
    case("tasks", "plain", {"tasks": DROP}, f"tasks: {REQUIRED}"),
    case("tasks.name", "plain", {"tasks.0.name": DROP}, f"tasks[0].name: {REQUIRED}"),
    case("tasks.period_ms", "plain", {"tasks.0.period_ms": DROP},
         f"tasks[0].period_ms: {REQUIRED}"),
    case("tasks.period_ms-misspelt", "plain", {"tasks.0.period_ms": DROP, "tasks.0.period": 20},
         f"tasks[0].period_ms: {REQUIRED}"),
    case("tasks.inputs", "plain", {"tasks.0.inputs": DROP}, f"tasks[0].inputs: {REQUIRED}"),
    case("tasks.outputs", "plain", {"tasks.0.outputs": DROP}, f"tasks[0].outputs: {REQUIRED}"),
    case("tasks.outputs-empty", "plain", {"tasks.0.outputs": {}},
         "tasks[0].outputs: expected at least one output port, got none"),
    case("models.name", "model", {"models.0.name": DROP}, f"models[0].name: {REQUIRED}"),
    case("models.file", "model", {"models.0.file": DROP}, f"models[0].file: {REQUIRED}"),
    case("models.sha256", "model", {"models.0.sha256": DROP}, f"models[0].sha256: {REQUIRED}"),
    case("models.inputs", "model", {"models.0.inputs": DROP}, f"models[0].inputs: {REQUIRED}"),
    case("models.outputs", "model", {"models.0.outputs": DROP},
         f"models[0].outputs: {REQUIRED}"),
    case("models.port.name", "model", {"models.0.inputs.0.name": DROP},
         f"models[0].inputs[0].name: {REQUIRED}"),
    case("models.port.shape", "model", {"models.0.inputs.0.shape": DROP},
         f"models[0].inputs[0].shape: {REQUIRED}"),
    case("guards.signal", "guard", {"guards.0.signal": DROP}, f"guards[0].signal: {REQUIRED}"),
    case("source.factory", "source", {"source.factory": DROP}, f"source.factory: {REQUIRED}"),
    case("source.empty", "plain", {"source": {}}, f"source.factory: {REQUIRED}"),
]

WRONG_TYPES = [
    case("int-as-string", "plain", {"runtime.minor_frame_ms": "10"},
         "runtime.minor_frame_ms: expected an integer, got '10' (string)"),
    case("int-as-bool", "plain", {"runtime.workers": True},
         "runtime.workers: expected an integer, got True (boolean)"),
    case("int-as-float", "plain", {"tasks.0.period_ms": 20.0},
         "tasks[0].period_ms: expected an integer, got 20.0 (float)"),
    case("budget-as-bool", "plain", {"tasks.0.budget_us": False},
         "tasks[0].budget_us: expected an integer, got False (boolean)"),
    case("bool-as-int", "plain", {"runtime.freeze_gc": 1},
         "runtime.freeze_gc: expected true or false, got 1 (integer)"),
    case("bool-as-string", "plain", {"signals.0.input": "yes"},
         "signals[0].input: expected true or false, got 'yes' (string)"),
    case("string-as-int", "plain", {"mission.name": 5},
         "mission.name: expected a string, got 5 (integer)"),
    case("port-signal-as-int", "plain", {"tasks.0.inputs.a": 5},
         "tasks[0].inputs.a: expected a string, got 5 (integer)"),
    case("function-as-array", "plain", {"tasks.0.function": ["os.path:join"]},
         "tasks[0].function: expected a string, got ['os.path:join'] (array)"),
    case("providers-as-string", "model", {"models.0.providers": "CPUExecutionProvider"},
         "models[0].providers: expected an array of strings, got 'CPUExecutionProvider' "
         "(string)"),
    case("providers-empty", "model", {"models.0.providers": []},
         "models[0].providers: expected a non-empty array of strings, got []"),
    case("guard-number-as-string", "guard", {"guards.0.min": "-1"},
         "guards[0].min: expected a number, got '-1' (string)"),
    case("guard-number-as-bool", "guard", {"guards.0.max": True},
         "guards[0].max: expected a number, got True (boolean)"),
    case("guard-nan", "guard", {"guards.0.min": float("nan")},
         "guards[0].min: expected a finite number, got nan (float)"),
    case("guard-inf", "guard", {"guards.0.max": float("inf")},
         "guards[0].max: expected a finite number, got inf (float)"),
    case("guard-minus-inf", "guard", {"guards.0.max_step": float("-inf")},
         "guards[0].max_step: expected a finite number, got -inf (float)"),
    case("mission-not-table", "plain", {"mission": 5},
         "mission: expected a table, got 5 (integer)"),
    case("runtime-not-table", "plain", {"runtime": "fast"},
         "runtime: expected a table, got 'fast' (string)"),
    case("external-not-table", "plain", {"runtime.external": 5},
         "runtime.external: expected a table, got 5 (integer)"),
    case("signals-not-array", "plain", {"signals": {"name": "x"}},
         "signals: expected an array of tables, got {'name': 'x'} (table)"),
    case("signal-not-table", "plain", {"signals.+": "z"},
         "signals[2]: expected a table, got 'z' (string)"),
    case("tasks-not-array", "plain", {"tasks": "t"},
         "tasks: expected an array of tables, got 't' (string)"),
    case("task-inputs-not-table", "plain", {"tasks.0.inputs": ["x"]},
         "tasks[0].inputs: expected a table, got ['x'] (array)"),
    case("task-params-not-table", "plain", {"tasks.0.params": 5},
         "tasks[0].params: expected a table, got 5 (integer)"),
    case("model-inputs-not-array", "model",
         {"models.0.inputs": {"name": "in", "dtype": "float32", "shape": [1]}},
         "models[0].inputs: expected an array of tables, got {'name': 'in', 'dtype': "
         "'float32', 'shape': [1]} (table)"),
    case("guards-not-array", "plain", {"guards": {"signal": "y"}},
         "guards: expected an array of tables, got {'signal': 'y'} (table)"),
    case("safe-not-table", "plain", {"safe": [True]},
         "safe: expected a table, got [True] (array)"),
    case("source-not-table", "plain", {"source": FN},
         "source: expected a table, got 'os.path:join' (string)"),
    case("source-params-not-table", "source", {"source.params": [7]},
         "source.params: expected a table, got [7] (array)"),
]

RANGES = [
    case("workers-0", "plain", {"runtime.workers": 0},
         "runtime.workers: expected an integer >= 1, got 0"),
    case("workers-65", "plain", {"runtime.workers": 65},
         "runtime.workers: expected an integer <= 64, got 65"),
    case("minor_frame_ms-0", "plain", {"runtime.minor_frame_ms": 0},
         "runtime.minor_frame_ms: expected an integer >= 1, got 0"),
    case("minor_frame_ms-60001", "plain", {"runtime.minor_frame_ms": 60_001},
         "runtime.minor_frame_ms: expected an integer <= 60000, got 60001"),
    case("spin_us-negative", "plain", {"runtime.spin_us": -1},
         "runtime.spin_us: expected an integer >= 0, got -1"),
    case("spin_us-100001", "plain", {"runtime.spin_us": 100_001},
         "runtime.spin_us: expected an integer <= 100000, got 100001"),
    case("duration_ms-negative", "plain", {"runtime.duration_ms": -10},
         "runtime.duration_ms: expected an integer >= 0, got -10"),
    case("tick_timeout_ms-0", "plain", {"runtime.external": {"tick_timeout_ms": 0}},
         "runtime.external.tick_timeout_ms: expected an integer >= 1, got 0"),
    case("intra_op_threads-0", "model", {"models.0.intra_op_threads": 0},
         "models[0].intra_op_threads: expected an integer >= 1, got 0"),
    case("inter_op_threads-65", "model", {"models.0.inter_op_threads": 65},
         "models[0].inter_op_threads: expected an integer <= 64, got 65"),
    case("warmup_runs-negative", "model", {"models.0.warmup_runs": -1},
         "models[0].warmup_runs: expected an integer >= 0, got -1"),
    case("after_consecutive_overruns-negative", "plain",
         {"safe": {"after_consecutive_overruns": -1}},
         "safe.after_consecutive_overruns: expected an integer >= 0, got -1"),
    case("budget_us-negative", "plain", {"tasks.0.budget_us": -1},
         "tasks[0].budget_us: expected an integer >= 0, got -1"),
    case("period_ms-0", "plain", {"tasks.0.period_ms": 0},
         "tasks[0].period_ms: expected an integer >= 1, got 0"),
    case("offset_ms-negative", "plain", {"tasks.0.offset_ms": -10},
         "tasks[0].offset_ms: expected an integer >= 0, got -10"),
    case("deadline_ms-0", "plain", {"tasks.0.deadline_ms": 0},
         "tasks[0].deadline_ms: expected an integer >= 1, got 0"),
]

TIMING = [
    case("period-not-multiple", "plain", {"tasks.0.period_ms": 15},
         "tasks[0].period_ms: expected a multiple of runtime.minor_frame_ms (10), got 15"),
    case("period-below-frame", "plain", {"tasks.0.period_ms": 5},
         "tasks[0].period_ms: expected a multiple of runtime.minor_frame_ms (10), got 5"),
    case("offset-not-multiple", "plain", {"tasks.0.offset_ms": 5},
         "tasks[0].offset_ms: expected a multiple of runtime.minor_frame_ms (10) below "
         "period_ms (20), got 5"),
    case("offset-equals-period", "plain", {"tasks.0.offset_ms": 20},
         "tasks[0].offset_ms: expected a multiple of runtime.minor_frame_ms (10) below "
         "period_ms (20), got 20"),
    case("offset-beyond-period", "plain", {"tasks.0.offset_ms": 30},
         "tasks[0].offset_ms: expected a multiple of runtime.minor_frame_ms (10) below "
         "period_ms (20), got 30"),
    case("deadline-beyond-period", "plain", {"tasks.0.deadline_ms": 30},
         "tasks[0].deadline_ms: expected a multiple of runtime.minor_frame_ms (10) up to "
         "period_ms (20), got 30"),
    case("deadline-not-multiple", "plain", {"tasks.0.deadline_ms": 15},
         "tasks[0].deadline_ms: expected a multiple of runtime.minor_frame_ms (10) up to "
         "period_ms (20), got 15"),
]

ENUMS = [
    case("clock", "plain", {"runtime.clock": "realtime"},
         "runtime.clock: expected one of 'wall', 'fast', 'external', got 'realtime' (string)"),
    case("clock-not-string", "plain", {"runtime.clock": 1},
         "runtime.clock: expected one of 'wall', 'fast', 'external', got 1 (integer)"),
    case("late_jobs", "plain", {"runtime.external": {"late_jobs": "drop"}},
         "runtime.external.late_jobs: expected one of 'wait', 'overrun', got 'drop' (string)"),
    case("placement", "plain", {"tasks.0.placement": "thread"},
         "tasks[0].placement: expected one of 'frame', 'worker', got 'thread' (string)"),
    case("on_overrun", "plain", {"tasks.0.on_overrun": "ignore"},
         "tasks[0].on_overrun: expected one of 'hold', 'skip', 'fallback', "
         "got 'ignore' (string)"),
    case("on_guard-case", "plain", {"tasks.0.on_guard": "HOLD"},
         "tasks[0].on_guard: expected one of 'hold', 'skip', 'fallback', got 'HOLD' (string)"),
    case("graph_optimization", "model", {"models.0.graph_optimization": "max"},
         "models[0].graph_optimization: expected one of 'disabled', 'basic', 'extended', "
         "'all', got 'max' (string)"),
    case("execution_mode", "model", {"models.0.execution_mode": "async"},
         "models[0].execution_mode: expected one of 'sequential', 'parallel', "
         "got 'async' (string)"),
]

DTYPES_AND_SHAPES = [
    case("signal-dtype", "plain", {"signals.0.dtype": "float"},
         f"signals[0].dtype: expected one of {DTYPES}, got 'float' (string)"),
    case("signal-dtype-numpy-alias", "plain", {"signals.0.dtype": "f4"},
         f"signals[0].dtype: expected one of {DTYPES}, got 'f4' (string)"),
    case("signal-dtype-not-string", "plain", {"signals.0.dtype": 32},
         "signals[0].dtype: expected a string, got 32 (integer)"),
    case("port-dtype", "model", {"models.0.inputs.0.dtype": "double"},
         f"models[0].inputs[0].dtype: expected one of {DTYPES}, got 'double' (string)"),
    case("shape-zero", "plain", {"signals.0.shape": [0]},
         "signals[0].shape: expected an array of positive integers, got [0] (array)"),
    case("shape-negative", "plain", {"signals.0.shape": [1, -1]},
         "signals[0].shape: expected an array of positive integers, got [1, -1] (array)"),
    case("shape-not-array", "plain", {"signals.0.shape": 3},
         "signals[0].shape: expected an array of positive integers, got 3 (integer)"),
    case("shape-float", "plain", {"signals.0.shape": [3.0]},
         "signals[0].shape: expected an array of positive integers, got [3.0] (array)"),
    case("shape-bool", "plain", {"signals.0.shape": [True]},
         "signals[0].shape: expected an array of positive integers, got [True] (array)"),
    case("port-shape-zero", "model", {"models.0.outputs.0.shape": [1, 0]},
         "models[0].outputs[0].shape: expected an array of positive integers, "
         "got [1, 0] (array)"),
]

SHA_RULE = "models[0].sha256: expected 64 lowercase hex digits"
SHA256 = [
    case("uppercase", "model", {"models.0.sha256": SHA.upper()},
         f"{SHA_RULE}, got '{SHA.upper()[:56]}... (string)"),
    case("short", "model", {"models.0.sha256": SHA[:8]},
         f"{SHA_RULE}, got '{SHA[:8]}' (string)"),
    case("prefixed", "model", {"models.0.sha256": "sha256:" + SHA},
         f"{SHA_RULE}, got 'sha256:{SHA[:49]}... (string)"),
    case("not-string", "model", {"models.0.sha256": 5},
         "models[0].sha256: expected a string, got 5 (integer)"),
]

NAMES = [
    case("mission-space", "plain", {"mission.name": "my mission"},
         f"mission.name: expected {NAME_RULE}, got 'my mission' (string)"),
    case("signal-digit-first", "plain", {"signals.1.name": "1y"},
         f"signals[1].name: expected {NAME_RULE}, got '1y' (string)"),
    case("task-empty", "plain", {"tasks.0.name": ""},
         f"tasks[0].name: expected {NAME_RULE}, got '' (string)"),
    case("model-slash", "model", {"models.0.name": "a/b"},
         f"models[0].name: expected {NAME_RULE}, got 'a/b' (string)"),
    case("signal-duplicate", "plain", {"signals.+": {"name": "x", "dtype": "int8", "shape": [2],
                                                     "input": True}},
         "signals[2].name: expected a signal name not used before, got 'x'"),
    case("model-duplicate", "model",
         {"models.+": {"name": "net", "file": "other.onnx", "sha256": SHA, "inputs": [],
                       "outputs": []}},
         "models[1].name: expected a model name not used before, got 'net'"),
    case("task-duplicate", "plain",
         {"signals.+": _signal("z"), "tasks.+": _task("t", outputs={"c": "z"})},
         "tasks[1].name: expected a task name not used before, got 't'"),
]

TASK_KINDS = [
    case("none", "plain", {"tasks.0.function": DROP},
         "tasks[0]: expected exactly one of model, function, factory, got none"),
    case("function-and-factory", "plain", {"tasks.0.factory": "os.path:Path"},
         "tasks[0]: expected exactly one of model, function, factory, got function, factory"),
    case("model-and-function", "model", {"tasks.0.function": FN},
         "tasks[0]: expected exactly one of model, function, factory, got model, function"),
    case("empty-model-and-function", "plain", {"tasks.0.model": ""},
         "tasks[0]: expected exactly one of model, function, factory, got model, function"),
    case("undeclared-model", "model", {"tasks.0.model": "nope"},
         "tasks[0].model: expected the name of a declared model, got 'nope'"),
    case("no-models-section", "model", {"models": DROP},
         "tasks[0].model: expected the name of a declared model, got 'net'"),
    case("params-on-function", "plain", {"tasks.0.params": {"gain": 0.5}},
         "tasks[0].params: expected no params on a model or function task (only a factory "
         "takes params), got {'gain': 0.5} (table)"),
    case("params-on-model", "model", {"tasks.0.params": {"gain": 0.5}},
         "tasks[0].params: expected no params on a model or function task (only a factory "
         "takes params), got {'gain': 0.5} (table)"),
]

TARGETS = [
    case("no-colon", "plain", {"tasks.0.function": "os.path.join"},
         f"tasks[0].function: expected {TARGET_RULE}, got 'os.path.join' (string)"),
    case("empty", "plain", {"tasks.0.function": ""},
         f"tasks[0].function: expected {TARGET_RULE}, got '' (string)"),
    case("no-module", "plain", {"tasks.0.function": ":join"},
         f"tasks[0].function: expected {TARGET_RULE}, got ':join' (string)"),
    case("no-name", "plain", {"tasks.0.function": "tasks.py:"},
         f"tasks[0].function: expected {TARGET_RULE}, got 'tasks.py:' (string)"),
    case("name-not-identifier", "plain", {"tasks.0.function": "tasks.py:run-it"},
         f"tasks[0].function: expected {TARGET_RULE}, got 'tasks.py:run-it' (string)"),
    case("factory-file-only", "plain",
         {"tasks.0.function": DROP, "tasks.0.factory": "tasks.py"},
         f"tasks[0].factory: expected {TARGET_RULE}, got 'tasks.py' (string)"),
    case("source-factory", "source", {"source.factory": "Ramp"},
         f"source.factory: expected {TARGET_RULE}, got 'Ramp' (string)"),
]

REFERENCES = [
    case("input-undeclared", "plain", {"tasks.0.inputs.a": "nope"},
         "tasks[0].inputs.a: expected the name of a declared signal, or one followed by "
         "'@t_ns', got 'nope'"),
    case("input-tag-undeclared", "plain", {"tasks.0.inputs.a": "nope@t_ns"},
         "tasks[0].inputs.a: expected the name of a declared signal, or one followed by "
         "'@t_ns', got 'nope@t_ns'"),
    case("output-undeclared", "plain", {"tasks.0.outputs.b": "nope"},
         "tasks[0].outputs.b: expected the name of a declared signal, got 'nope'"),
    case("writes-input-signal", "plain", {"tasks.0.outputs.c": "x"},
         "tasks[0].outputs.c: expected a signal that is not an input (input = true), got 'x'"),
    case("two-writers", "plain", {"tasks.+": _task("u", outputs={"c": "y"})},
         "tasks[1].outputs.c: expected a signal no other task writes ('t' does), got 'y'"),
    case("unwritten-signal", "plain", {"signals.+": _signal("z")},
         "signals[2].name: expected a signal written by a task or input = true, "
         "got 'z', which nothing writes"),
]

MODEL_PORTS = [
    case("unknown-input-port", "model", {"tasks.0.inputs.extra": "x"},
         "tasks[0].inputs.extra: expected an input port of model 'net' (in), got 'extra'"),
    case("unknown-output-port", "model", {"tasks.0.outputs": {"result": "y"}},
         "tasks[0].outputs.result: expected an output port of model 'net' (out), got 'result'"),
    case("input-port-unmapped", "model",
         {"models.0.inputs.+": {"name": "in2", "dtype": "float32", "shape": [1]}},
         "tasks[0].inputs: expected a signal for model input 'in2', got none"),
    case("output-port-unmapped", "model",
         {"models.0.outputs.+": {"name": "aux", "dtype": "float32", "shape": [1]}},
         "tasks[0].outputs: expected a signal for model output 'aux', got none"),
    case("dtype-mismatch", "model", {"models.0.inputs.0.dtype": "float64"},
         "tasks[0].inputs.in: expected a signal of float64[1] like the model port, "
         "got 'x': float32[1]"),
    case("shape-mismatch", "model", {"models.0.outputs.0.shape": [1, 1]},
         "tasks[0].outputs.out: expected a signal of float32[1, 1] like the model port, "
         "got 'y': float32[1]"),
]

FALLBACKS = [
    case("names-periodic-task", "fallback",
         {"tasks.1.fallback_only": DROP, "tasks.1.period_ms": 20},
         "tasks[0].fallback: expected the name of a task with fallback_only = true, got 'fb'"),
    case("names-unknown-task", "fallback", {"tasks.0.fallback": "nope"},
         "tasks[0].fallback: expected the name of a task with fallback_only = true, got 'nope'"),
    case("names-itself", "fallback", {"tasks.0.fallback": "t"},
         "tasks[0].fallback: expected the name of a task with fallback_only = true, got 't'"),
    case("outputs-differ", "fallback", {"signals.+": _signal("z"), "tasks.1.outputs": {"b": "z"}},
         "tasks[1].outputs: expected the same signals as task 't' writes, got z"),
    case("outputs-extra", "fallback",
         {"signals.+": _signal("z"), "tasks.1.outputs.c": "z"},
         "tasks[1].outputs: expected the same signals as task 't' writes, got y, z"),
    case("policy-without-fallback", "plain", {"tasks.0.on_guard": "fallback"},
         "tasks[0].fallback: expected a fallback task when a policy is 'fallback', got none"),
    case("policy-on-fallback-only", "fallback", {"tasks.1.on_overrun": "fallback"},
         "tasks[1].on_overrun: expected no value on a fallback_only task, "
         "got 'fallback' (string)"),
    case("guard-policy-on-fallback-only", "fallback", {"tasks.1.on_guard": "hold"},
         "tasks[1].on_guard: expected no value on a fallback_only task, got 'hold' (string)"),
    case("fallback_only-period", "fallback", {"tasks.1.period_ms": 20},
         "tasks[1].period_ms: expected no value on a fallback_only task, got 20 (integer)"),
    case("fallback_only-offset", "fallback", {"tasks.1.offset_ms": 0},
         "tasks[1].offset_ms: expected no value on a fallback_only task, got 0 (integer)"),
    case("fallback_only-deadline", "fallback", {"tasks.1.deadline_ms": 10},
         "tasks[1].deadline_ms: expected no value on a fallback_only task, got 10 (integer)"),
    case("fallback_only-fallback", "fallback", {"tasks.1.fallback": "t"},
         "tasks[1].fallback: expected no value on a fallback_only task, got 't' (string)"),
    case("fallback_only-unused", "fallback", {"tasks.0.fallback": DROP,
                                              "tasks.0.on_overrun": "hold"},
         "tasks[1].fallback_only: expected a task named by some task's fallback, "
         "got no task uses it"),
    case("fallback_only-worker", "fallback", {"tasks.1.placement": "worker"},
         "tasks[1].placement: expected 'frame' for a fallback_only task, got 'worker'"),
]

GUARDS = [
    case("unknown-signal", "guard", {"guards.0.signal": "nope"},
         "guards[0].signal: expected a signal written by a task, got 'nope'"),
    case("input-signal", "guard", {"guards.0.signal": "x"},
         "guards[0].signal: expected a signal written by a task, got 'x'"),
    case("min-above-max", "guard", {"guards.0.min": 2},
         "guards[0].max: expected a value >= min (2.0), got 1.0"),
    case("max_step-zero", "guard", {"guards.0.max_step": 0},
         "guards[0].max_step: expected a positive number, got 0.0"),
    case("max_step-negative", "guard", {"guards.0.max_step": -0.5},
         "guards[0].max_step: expected a positive number, got -0.5"),
]

GROUPS = {
    "unknown-key": UNKNOWN_KEYS, "missing": MISSING, "type": WRONG_TYPES, "range": RANGES,
    "timing": TIMING, "enum": ENUMS, "dtype-shape": DTYPES_AND_SHAPES, "sha256": SHA256,
    "name": NAMES, "task-kind": TASK_KINDS, "target": TARGETS, "reference": REFERENCES,
    "model-port": MODEL_PORTS, "fallback": FALLBACKS, "guard": GUARDS,
}
LOADER_CASES = [
    pytest.param(*p.values, id=f"{group}:{p.id}") for group, params in GROUPS.items()
    for p in params
]


@pytest.mark.parametrize(("base", "edits", "message"), LOADER_CASES)
def test_loader_refuses(base: str, edits: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_mission(edited(base, edits), BASE_DIR)
    err = info.value
    assert type(err) is ConfigError
    assert str(err) == message
    # The parts agree with the message: path, then what was expected and found.
    assert message == f"{err.path}: expected {err.expected}, got {err.found}"


def test_unknown_key_message_lists_known_keys() -> None:
    with pytest.raises(ConfigError) as info:
        parse_mission(edited("plain", {"tasks.0.deadline": 10}), BASE_DIR)
    err = info.value
    assert err.path == "tasks[0].deadline"
    assert "deadline_ms" in err.expected and "period_ms" in err.expected
    assert err.found == "unknown key 'deadline'"


def test_document_must_be_a_table() -> None:
    with pytest.raises(ConfigError) as info:
        parse_mission([], BASE_DIR)  # type: ignore[arg-type]
    assert str(info.value) == "<document>: expected a table, got [] (array)"


# -- load_mission: the file itself ----------------------------------------------------------------

MINIMAL_TOML = """\
[mission]
name = "m"

[runtime]
minor_frame_ms = 10

[[signals]]
name = "x"
dtype = "float32"
shape = [1]
input = true

[[signals]]
name = "y"
dtype = "float32"
shape = [1]

[[tasks]]
name = "t"
function = "tasks.py:step"
period_ms = {period}
inputs = {{ a = "x" }}
outputs = {{ b = "y" }}
"""


def test_load_mission_resolves_from_the_file_folder(tmp_path: Path) -> None:
    path = tmp_path / "mission.toml"
    path.write_text(MINIMAL_TOML.format(period=20), encoding="utf-8")
    config = load_mission(path)
    assert config.base_dir == tmp_path.resolve()
    assert config.tasks[0].function == "tasks.py:step"


def test_load_mission_reports_key_errors(tmp_path: Path) -> None:
    path = tmp_path / "mission.toml"
    path.write_text(MINIMAL_TOML.format(period=15), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_mission(path)
    assert str(info.value) == (
        "tasks[0].period_ms: expected a multiple of runtime.minor_frame_ms (10), got 15")


def test_load_mission_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as info:
        load_mission(path)
    err = info.value
    assert (err.path, err.expected) == (str(path), "a readable mission file")
    assert err.found == "No such file or directory"


def test_load_mission_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_mission(tmp_path)
    err = info.value
    assert (err.path, err.expected) == (str(tmp_path), "a readable mission file")


def test_load_mission_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "mission.toml"
    path.write_text("[mission]\nname = m\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_mission(path)
    err = info.value
    assert (err.path, err.expected) == (str(path), "valid TOML")
    assert err.found is not None and "line 2" in err.found


def test_load_mission_duplicate_toml_key(tmp_path: Path) -> None:
    path = tmp_path / "mission.toml"
    path.write_text(MINIMAL_TOML.format(period=20) + "[mission]\nname = \"n\"\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_mission(path)
    assert (info.value.path, info.value.expected) == (str(path), "valid TOML")


def test_load_mission_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "mission.toml"
    path.write_bytes(b'[mission]\nname = "\xff"\n')
    with pytest.raises(ConfigError) as info:
        load_mission(path)
    err = info.value
    assert (err.path, err.expected) == (str(path), "a UTF-8 text file")
    assert err.found is not None and "0xff" in err.found


# -- schedule refusals ----------------------------------------------------------------------------

SCHEDULE_CASES = [
    pytest.param(
        "plain", {"tasks.0.budget_us": 20_001},
        "tasks[0].budget_us: expected a budget within the deadline of task 't' (20 ms), "
        "got 20.001 ms",
        id="budget-beyond-deadline"),
    pytest.param(
        "plain", {"tasks.0.deadline_ms": 10, "tasks.0.budget_us": 15_000,
                  "tasks.0.placement": "worker"},
        "tasks[0].budget_us: expected a budget within the deadline of task 't' (10 ms), "
        "got 15 ms",
        id="budget-beyond-short-deadline"),
    pytest.param(
        "plain", {"tasks.0.budget_us": 15_000},
        "tasks[0].budget_us: expected frame-thread budgets within the minor frame (10 ms); "
        "task 't' brings frame 0 to, got 15 ms",
        id="frame-overflow-one-task"),
    pytest.param(
        "plain",
        {"signals.+": _signal("z"), "tasks.0.budget_us": 6_000,
         "tasks.+": _task("u", period_ms=40, offset_ms=20, budget_us=5_000,
                          outputs={"c": "z"})},
        "tasks[1].budget_us: expected frame-thread budgets within the minor frame (10 ms); "
        "task 'u' brings frame 2 to, got 11 ms",
        id="frame-overflow-two-tasks"),
    pytest.param(
        "plain",
        {"runtime.workers": 1, "signals.+": _signal("z"),
         "tasks.0.placement": "worker", "tasks.0.budget_us": 15_000,
         "tasks.+": _task("u", placement="worker", budget_us=10_000, outputs={"c": "z"})},
        "tasks[1].budget_us: expected worker tasks within runtime.workers (1) threads; "
        "task 'u' brings them to, got 1.25",
        id="worker-utilisation"),
    pytest.param(
        "fallback", {"tasks.1.budget_us": 20_001},
        "tasks[1].budget_us: expected a budget within the deadline of task 't' (20 ms), "
        "got 20.001 ms",
        id="fallback-budget-beyond-deadline"),
    pytest.param(
        "fallback", {"tasks.0.placement": "worker", "tasks.0.budget_us": 1_000,
                     "tasks.1.budget_us": 6_000},
        "tasks[0].budget_us: expected frame-thread budgets within the minor frame (10 ms); "
        "task 't' brings frame 0 to, got 12 ms",
        id="worker-fallback-runs-on-the-frame-thread"),
    pytest.param(
        "plain",
        {"runtime.minor_frame_ms": 1, "tasks.0.period_ms": 1000, "signals.+": _signal("z"),
         "tasks.+": _task("u", period_ms=1009, outputs={"c": "z"})},
        "tasks[1].period_ms: expected a period keeping the hyperperiod under 1000000 frames, "
        "got 1009 (hyperperiod 1009.000 s)",
        id="hyperperiod"),
]


@pytest.mark.parametrize(("base", "edits", "message"), SCHEDULE_CASES)
def test_schedule_refuses(base: str, edits: dict[str, Any], message: str) -> None:
    config = parse_mission(edited(base, edits), BASE_DIR)
    with pytest.raises(ScheduleError) as info:
        build_table(config)
    err = info.value
    assert isinstance(err, ConfigError)
    assert str(err) == message
    assert message == f"{err.path}: expected {err.expected}, got {err.found}"


def test_worker_budgets_do_not_load_frames() -> None:
    data = edited("plain", {
        "signals.+": _signal("z"), "tasks.0.placement": "worker", "tasks.0.budget_us": 9_000,
        "tasks.+": _task("u", placement="worker", budget_us=9_000, outputs={"c": "z"}),
    })
    table = build_table(parse_mission(data, BASE_DIR))
    assert table.frame_load_ns == (0, 0)
    assert table.worker_utilisation == pytest.approx(0.9)


# -- the example ----------------------------------------------------------------------------------

def test_example_mission_loads_and_schedules() -> None:
    config = load_mission(EXAMPLE)
    table = build_table(config)
    assert config.name == "ltd1-lite"
    assert len(table.slots) == 50
    assert table.hyperperiod_ns == 500_000_000
    assert [t.name for t in config.periodic_tasks] == [
        "nav", "guidance", "thrust", "camera_monitor"]
