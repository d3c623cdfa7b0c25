"""Timing admission: every task's budget must cover its profiled p99.9 plus a margin.

A profile (:mod:`flightai.profile`) holds only where it was measured: on this
board (:data:`~flightai.fingerprint.TIMING_FIELDS`), for these model bytes,
run by these providers with these options. Anything else is refused before a
budget is compared, naming what differs.

A task's budget is its ``budget_us`` or, when it declares none, its deadline
(it must be done by then). A model task is measured by its model; a Python
task by its own entry, when the profile could time it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from flightai.config.schema import MissionConfig, TaskConfig
from flightai.fingerprint import TIMING_FIELDS, differences
from flightai.infer.session import SessionReport
from flightai.profile import Profile, Timing
from flightai.timebase import format_ns

if TYPE_CHECKING:  # check imports this module
    from flightai.check import CheckResult


def admit(config: MissionConfig, profile: Profile, reports: Mapping[str, SessionReport],
          here: Mapping[str, str], result: CheckResult) -> None:
    """Check that ``profile`` applies here and that every task's budget covers it.

    Args:
        config: the validated mission.
        profile: a profile read from the board.
        reports: the session report of each model as built now (running providers, options).
        here: this machine's fingerprint.
        result: the check report the admission lines and problems are added to.
    """
    problems_before = len(result.problems)
    for key, then, now in differences(profile.fingerprint, here, TIMING_FIELDS):
        result.problem(f"the profile was made on another board or build: {key} is {then!r} in "
                       f"the profile, {now!r} here; profile again on this board")
    for model in config.models:
        _check_model(model.name, model.sha256, profile, reports.get(model.name), result)
    if len(result.problems) > problems_before:
        result.lines.append("  budgets not compared: the profile does not apply")
        return
    margin = config.runtime.admission
    result.lines.append(f"  margin: {margin.margin_pct} % of p99.9 + {margin.margin_us} us "
                        "(runtime.admission)")
    result.lines.append(f"  {'task':<16} {'budget':>9} {'p99.9':>9} {'margin':>9} "
                        f"{'needed':>9}  verdict")
    for task in config.tasks:
        _check_task(config, task, profile, result)


def _check_model(name: str, sha256: str, profile: Profile, report: SessionReport | None,
                 result: CheckResult) -> None:
    entry = profile.models.get(name)
    if entry is None:
        result.problem(f"model {name!r} is not in the profile (made for mission "
                       f"{profile.mission!r}); profile this mission")
        return
    if entry.sha256 != sha256:
        result.problem(f"model {name!r}: the profile timed SHA-256 {entry.sha256}, the config "
                       f"says {sha256}; profile the model being flown")
    if report is None:
        return
    if entry.running != report.running:
        result.problem(f"model {name!r}: the profile ran on {', '.join(entry.running)}, "
                       f"this board runs {', '.join(report.running)}")
    options = dict(report.options)
    for key in sorted(set(entry.options) | set(options)):
        if entry.options.get(key) != options.get(key):
            result.problem(f"model {name!r}: option {key} was {entry.options.get(key)!r} when "
                           f"profiled, is {options.get(key)!r} now")


def _timing(task: TaskConfig, profile: Profile) -> tuple[Timing | None, str]:
    if task.model is not None:
        return profile.models[task.model].timing, f"model {task.model}"
    entry = profile.tasks.get(task.name)
    if entry is None:
        return None, "not in the profile"
    return entry.timing, entry.error


def _check_task(config: MissionConfig, task: TaskConfig, profile: Profile,
                result: CheckResult) -> None:
    timing, note = _timing(task, profile)
    budget_ns = task.budget_ns or task.deadline_ns
    source = "budget_us" if task.budget_ns else "deadline"
    if timing is None:
        result.lines.append(f"  {task.name:<16} {format_ns(budget_ns) if budget_ns else '-':>9} "
                            f"{'-':>9} {'-':>9} {'-':>9}  not compared ({note})")
        return
    margin_ns = config.runtime.admission.margin_ns(timing.p999_ns)
    needed_ns = timing.p999_ns + margin_ns
    row = (f"  {task.name:<16} {format_ns(budget_ns) if budget_ns else '-':>9} "
           f"{format_ns(timing.p999_ns):>9} {format_ns(margin_ns):>9} {format_ns(needed_ns):>9}")
    if not budget_ns:
        result.lines.append(f"{row}  no budget to compare (fallback-only task without budget_us)")
        return
    if budget_ns >= needed_ns:
        result.lines.append(f"{row}  OK ({source})")
        return
    result.lines.append(f"{row}  REFUSED")
    result.problem(f"task {task.name!r}: {source} {format_ns(budget_ns)} is below the profiled "
                   f"p99.9 {format_ns(timing.p999_ns)} ({note or 'python'}) plus margin "
                   f"{format_ns(margin_ns)} = {format_ns(needed_ns)}")
