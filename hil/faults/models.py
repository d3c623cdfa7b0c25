"""Model faults: a plan's ``nan`` and ``overrun`` faults expanded to the jobs they hit.

A model fault acts on releases of its task in its window, each with the
fault's probability, drawn from its own stream in release order. The result
is an explicit list of jobs (:class:`flightai.inject.Injections`): the
in-process executive takes it directly, a runtime process reads it from the
file ``flightai run --inject-faults`` names, and a replay rebuilds it from the
recorded plan. It depends only on the plan and the mission's schedule, never on
what the run does, so it is the same live and replayed.
"""

from __future__ import annotations

from flightai.config.schema import MissionConfig
from flightai.inject import Injections
from flightai.sched.executive import NanOutput, Overrun, OverrunKind
from hil.faults.log import Applied
from hil.faults.plan import FaultPlan, Kind, Layer


def model_injections(plan: FaultPlan, config: MissionConfig,
                     end_ns: int) -> tuple[Injections, list[Applied]]:
    """The jobs the plan's model faults hit before ``end_ns``, and their log entries.

    Args:
        plan: the fault plan (only its model faults are used).
        config: the mission (the tasks' periods and offsets).
        end_ns: the run's horizon (mission time, excluded): a fault without
            ``end_ms`` lasts until it.
    """
    plan.check_against(config)
    overruns: list[Overrun] = []
    nans: list[NanOutput] = []
    log: list[Applied] = []
    for fault in plan.of(Layer.MODEL):
        task = config.task(fault.target)
        rng = fault.rng()
        stop_ns = end_ns if fault.end_ns is None else min(end_ns, fault.end_ns)
        skipped = max(0, -(-(fault.start_ns - task.offset_ns) // task.period_ns))
        t_ns = task.offset_ns + skipped * task.period_ns
        while t_ns < stop_ns:
            if rng.random() < fault.probability:
                if fault.kind is Kind.NAN:
                    nans.append(NanOutput(task.name, t_ns))
                    detail = "outputs replaced by NaN"
                else:
                    kind = OverrunKind(fault.params.get("overrun_kind", "late"))
                    overruns.append(Overrun(task.name, t_ns, kind))
                    detail = f"forced overrun ({kind.value})"
                log.append(Applied(t_ns, fault.name, fault.kind.value, task.name,
                                   f"release {t_ns} ns: {detail}"))
            t_ns += task.period_ns
    log.sort(key=lambda a: a.t_ns)  # stable: plan order within an instant
    return Injections(tuple(overruns), tuple(nans)), log
