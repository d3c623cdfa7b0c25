"""``flightai check``: load a mission, admit its models and tasks, print what will run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from flightai.admission import admit
from flightai.config.schema import MissionConfig, ModelConfig, TaskConfig
from flightai.errors import FlightaiError
from flightai.fingerprint import fingerprint
from flightai.infer.session import SessionReport, build_session, read_verified
from flightai.profile import Profile
from flightai.pytask import build_from_factory, load_object
from flightai.sched.table import build_table, format_table
from flightai.timebase import format_ns


@dataclass
class CheckResult:
    """The text of the report and the problems found (empty: the mission is fit to run)."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def problem(self, message: str) -> None:
        """Record a problem and show it in place."""
        self.problems.append(message)
        self.lines.append(f"  PROBLEM: {message}")


def check_mission(config: MissionConfig, path: Path, profile: Profile | None = None,
                  ) -> CheckResult:
    """Build the schedule table, admit every model and import every Python task.

    With a ``profile`` (``flightai check --profile``), also admit the timing:
    see :mod:`flightai.admission`.
    """
    result = CheckResult()
    out = result.lines
    rt = config.runtime
    out.append(f"mission {config.name!r} ({path})")
    out.append(f"runtime: minor frame {rt.minor_frame_ms} ms, clock {rt.clock.value}, "
               f"workers {rt.workers}")
    out.append("")
    out.append("tasks (publication order):")
    out.append(f"  {'name':<16} {'body':<28} {'period':>7} {'offset':>7} {'deadline':>8} "
               f"{'budget':>8}  placement  overrun/guard")
    for task in config.tasks:
        out.append("  " + _task_row(task))
    out.append("")
    out.append("schedule table:")
    try:
        out.extend("  " + line for line in format_table(build_table(config)).splitlines())
    except FlightaiError as exc:
        result.problem(str(exc))
    out.append("")
    out.append("models:")
    reports = {}
    for model in config.models:
        report = _check_model(model, result)
        if report is not None:
            reports[model.name] = report
    if not config.models:
        out.append("  (none)")
    out.append("")
    out.append("python code:")
    for task in config.tasks:
        if task.function is not None:
            _try(result, f"task {task.name!r}: function {task.function}",
                 partial(load_object, task.function, config.base_dir))
        elif task.factory is not None:
            _try(result, f"task {task.name!r}: factory {task.factory}",
                 partial(build_from_factory, task.factory, config.base_dir, dict(task.params)))
    if config.source is not None:
        src = config.source
        _try(result, f"source: factory {src.factory}",
             lambda: build_from_factory(src.factory, config.base_dir, dict(src.params)))
    out.append("")
    if profile is not None:
        out.append(f"timing admission (profile of {profile.mission!r}):")
        admit(config, profile, reports, fingerprint(), result)
        out.append("")
    if result.problems:
        out.append(f"FAILED: {len(result.problems)} problem(s)")
    else:
        out.append(f"OK: {len(config.tasks)} tasks, {len(config.models)} models, "
                   f"{len(config.signals)} signals")
    return result


def _task_row(task: TaskConfig) -> str:
    body = (f"model {task.model}" if task.model else
            f"fn {task.function}" if task.function else f"factory {task.factory}")
    if task.fallback_only:
        timing = f"{'(fallback only)':>23}"
    else:
        timing = (f"{task.period_ms:>5}ms {task.offset_ms:>5}ms {task.deadline_ms:>6}ms")
    budget = format_ns(task.budget_ns) if task.budget_us else "-"
    policy = f"{task.on_overrun.value}/{task.on_guard.value}"
    if task.fallback:
        policy += f" -> {task.fallback}"
    return (f"{task.name:<16} {body[:28]:<28} {timing} {budget:>8}  "
            f"{task.placement.value:<9}  {policy}")


def _check_model(model: ModelConfig, result: CheckResult) -> SessionReport | None:
    out = result.lines
    out.append(f"  {model.name}: {model.file}")
    ports = "; ".join(f"{p.name} {p.dtype}{list(p.shape)}" for p in model.inputs)
    outs = "; ".join(f"{p.name} {p.dtype}{list(p.shape)}" for p in model.outputs)
    out.append(f"    signature: in [{ports}] -> out [{outs}]")
    try:
        data = read_verified(model)
        out.append(f"    sha256: {model.sha256} OK")
        _, report = build_session(model, data)
    except FlightaiError as exc:
        result.problem(str(exc))
        return None
    out.extend(_report_lines(report))
    return report


def _report_lines(report: SessionReport) -> list[str]:
    nodes = (", ".join(f"{ep}: {n} nodes" for ep, n in report.nodes_by_provider)
             or "node placement not reported by this onnxruntime")
    lines = [f"    providers: requested {', '.join(report.requested)}; running "
             f"{', '.join(report.running)} ({nodes})"]
    if report.fallback:
        lines.append("    WARNING: provider fallback: the first requested provider does not run "
                     "every node")
    lines.append("    options: " + ", ".join(f"{k}={v}" for k, v in report.options))
    return lines


def _try(result: CheckResult, label: str, action: Callable[[], object]) -> None:
    try:
        action()
    except FlightaiError as exc:
        result.problem(str(exc))
        return
    result.lines.append(f"  {label}: OK")
