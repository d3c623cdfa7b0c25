"""The static schedule table of a cyclic executive, computed once at load.

Each minor frame of the hyperperiod lists, in config order, the tasks whose
deadline falls on its start (publications) and the tasks released at it. A
config that cannot meet its budgets is refused naming the task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flightai.config.schema import MissionConfig, Placement, TaskConfig
from flightai.errors import ScheduleError
from flightai.timebase import format_ns

MAX_FRAMES = 1_000_000


@dataclass(frozen=True)
class FrameSlot:
    """What happens at the start of one minor frame: publish, then release."""

    index: int
    deadlines: tuple[str, ...]
    releases: tuple[str, ...]


@dataclass(frozen=True)
class ScheduleTable:
    """The frames of one hyperperiod; frame ``k`` starts at ``k * minor_frame_ns``."""

    minor_frame_ns: int
    hyperperiod_ns: int
    slots: tuple[FrameSlot, ...]
    frame_load_ns: tuple[int, ...]
    worker_utilisation: float

    def slot_at(self, t_ns: int) -> FrameSlot:
        """The slot for mission instant ``t_ns`` (a multiple of the minor frame)."""
        return self.slots[(t_ns % self.hyperperiod_ns) // self.minor_frame_ns]


def _task_path(config: MissionConfig, task: TaskConfig) -> str:
    return f"tasks[{config.tasks.index(task)}]"


def build_table(config: MissionConfig) -> ScheduleTable:
    """Compute the schedule table and refuse what cannot be scheduled.

    Raises:
        ScheduleError: naming the task and the reason (budget beyond deadline,
            a frame's inline budgets beyond the minor frame, worker tasks
            needing more threads than ``runtime.workers``, hyperperiod too long).
    """
    frame_ns = config.runtime.minor_frame_ns
    tasks = config.periodic_tasks
    hyper_ns = frame_ns
    for task in tasks:
        hyper_ns = math.lcm(hyper_ns, task.period_ns)
        if hyper_ns // frame_ns > MAX_FRAMES:
            raise ScheduleError(f"{_task_path(config, task)}.period_ms",
                                f"a period keeping the hyperperiod under {MAX_FRAMES} frames",
                                f"{task.period_ms} (hyperperiod {format_ns(hyper_ns)})")
    n_frames = hyper_ns // frame_ns
    releases: list[list[str]] = [[] for _ in range(n_frames)]
    deadlines: list[list[str]] = [[] for _ in range(n_frames)]
    load_ns = [0] * n_frames
    utilisation = 0.0
    for task in tasks:
        path = _task_path(config, task)
        fallback = config.task(task.fallback) if task.fallback else None
        for owner in (task, fallback):
            if owner is not None and owner.budget_ns > task.deadline_ns:
                raise ScheduleError(f"{_task_path(config, owner)}.budget_us",
                                    f"a budget within the deadline of task {task.name!r} "
                                    f"({format_ns(task.deadline_ns)})",
                                    format_ns(owner.budget_ns))
        if task.placement is Placement.WORKER:
            utilisation += task.budget_ns / task.period_ns
            if utilisation > config.runtime.workers:
                raise ScheduleError(
                    f"{path}.budget_us",
                    f"worker tasks within runtime.workers ({config.runtime.workers}) threads; "
                    f"task {task.name!r} brings them to", f"{utilisation:.2f}")
        for t_release in range(task.offset_ns, hyper_ns, task.period_ns):
            k = t_release // frame_ns
            k_deadline = ((t_release + task.deadline_ns) % hyper_ns) // frame_ns
            releases[k].append(task.name)
            deadlines[k_deadline].append(task.name)
            for frame, extra_ns in _frame_work(task, fallback, k, k_deadline):
                load_ns[frame] += extra_ns
                if load_ns[frame] > frame_ns:
                    raise ScheduleError(
                        f"{path}.budget_us",
                        f"frame-thread budgets within the minor frame ({format_ns(frame_ns)}); "
                        f"task {task.name!r} brings frame {frame} to", format_ns(load_ns[frame]))
    slots = tuple(FrameSlot(k, tuple(deadlines[k]), tuple(releases[k])) for k in range(n_frames))
    return ScheduleTable(frame_ns, hyper_ns, slots, tuple(load_ns), utilisation)


def _frame_work(task: TaskConfig, fallback: TaskConfig | None, k_release: int,
                k_deadline: int) -> list[tuple[int, int]]:
    """Worst-case work one job puts on the frame thread, as (frame, ns) pairs.

    A frame-placed job runs at its release. A fallback always runs on the frame
    thread: at the release once latched, and once more at a deadline where the
    policy switches to it, so both frames carry its budget.
    """
    work = []
    release_ns = task.budget_ns if task.placement is Placement.FRAME else 0
    if fallback is not None:
        release_ns = max(release_ns, fallback.budget_ns)
        work.append((k_deadline, fallback.budget_ns))
    work.insert(0, (k_release, release_ns))
    return [(frame, ns) for frame, ns in work if ns]


def format_table(table: ScheduleTable, max_rows: int = 50) -> str:
    """The table as text for ``flightai check``: one row per frame with activity."""
    lines = [f"hyperperiod {format_ns(table.hyperperiod_ns)} = {len(table.slots)} frames "
             f"of {format_ns(table.minor_frame_ns)}; worker utilisation "
             f"{table.worker_utilisation:.2f}",
             f"{'frame':>6} {'t':>10}  {'load':>8}  publish -> release"]
    shown = 0
    for slot in table.slots:
        if not slot.deadlines and not slot.releases:
            continue
        if shown == max_rows:
            lines.append(f"  ... {len(table.slots) - slot.index} more frames")
            break
        t_ns = slot.index * table.minor_frame_ns
        lines.append(f"{slot.index:>6} {format_ns(t_ns):>10}  "
                     f"{format_ns(table.frame_load_ns[slot.index]):>8}  "
                     f"{', '.join(slot.deadlines) or '-'} -> {', '.join(slot.releases) or '-'}")
        shown += 1
    return "\n".join(lines)
