"""Bench-only fault injection into a runtime process: ``flightai run --inject-faults FILE``.

A HIL bench (``flightai demo --faults``) draws its seeded model faults on the
ground and hands the runtime the resulting list of jobs: the releases to force
an overrun on and the jobs whose outputs to replace by NaN. The runtime only
applies the list; nothing here draws random numbers or reads a fault plan.

Two locks keep it out of flight: the mission file cannot ask for it (there is
no config section), and the runtime refuses the option unless the environment
variable ``FLIGHTAI_FAULT_INJECTION`` is ``1``. When armed, ``flightai run``
prints a ``FAULT INJECTION ARMED`` line. The executive sees only two sets of
(task, release) pairs, looked up at each deadline only when non-empty.

The file is JSON::

    {"version": 1,
     "overruns": [{"task": "guidance", "t_release_ns": 20010000000, "kind": "late"}],
     "nan_outputs": [{"task": "guidance", "t_release_ns": 30010000000}]}
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flightai.config.schema import MissionConfig
from flightai.errors import ConfigError
from flightai.sched.executive import NanOutput, Overrun, OverrunKind

ENV_GATE = "FLIGHTAI_FAULT_INJECTION"
VERSION = 1


@dataclass(frozen=True)
class Injections:
    """The jobs a bench forces to overrun or to output NaN."""

    overruns: tuple[Overrun, ...] = ()
    nan_outputs: tuple[NanOutput, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The file's content."""
        return {"version": VERSION,
                "overruns": [{"task": o.task, "t_release_ns": o.t_release_ns,
                              "kind": o.kind.value} for o in self.overruns],
                "nan_outputs": [{"task": n.task, "t_release_ns": n.t_release_ns}
                                for n in self.nan_outputs]}


def armed(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process may inject faults (``FLIGHTAI_FAULT_INJECTION=1``)."""
    return (os.environ if environ is None else environ).get(ENV_GATE) == "1"


def load_injections(path: Path, config: MissionConfig,
                    environ: Mapping[str, str] | None = None) -> Injections:
    """Read and check an injection file against the mission.

    Raises:
        ConfigError: not armed, unreadable, or a bad entry (named by its key path).
    """
    if not armed(environ):
        raise ConfigError("--inject-faults", f"a bench run with {ENV_GATE}=1 in the environment "
                          "(fault injection is refused otherwise)", "the variable unset")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(str(path), "a readable JSON injection file", str(exc)) from None
    return parse_injections(data, config, str(path))


def parse_injections(data: Any, config: MissionConfig, where: str = "<injections>"
                     ) -> Injections:
    """Check the JSON form (see the module's description) against the mission's tasks."""
    if not isinstance(data, dict) or set(data) != {"version", "overruns", "nan_outputs"}:
        raise ConfigError(where, "an object with keys version, overruns, nan_outputs",
                          repr(sorted(data) if isinstance(data, dict) else type(data).__name__))
    if data["version"] != VERSION:
        raise ConfigError(f"{where}.version", str(VERSION), repr(data["version"]))
    tasks = {t.name for t in config.periodic_tasks}
    kinds = {k.value: k for k in OverrunKind}
    overruns = []
    for i, entry in enumerate(_entries(data, "overruns", where)):
        path = f"{where}.overruns[{i}]"
        task, t_release_ns = _job(entry, path, tasks, {"kind"})
        kind = entry.get("kind")
        if not isinstance(kind, str) or kind not in kinds:
            raise ConfigError(f"{path}.kind", f"one of {sorted(kinds)}", repr(kind))
        overruns.append(Overrun(task, t_release_ns, kinds[kind]))
    nans = [NanOutput(*_job(entry, f"{where}.nan_outputs[{i}]", tasks, set()))
            for i, entry in enumerate(_entries(data, "nan_outputs", where))]
    return Injections(tuple(overruns), tuple(nans))


def _entries(data: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    entries = data[key]
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"{where}.{key}", "an array of objects", type(entries).__name__)
    return entries


def _job(entry: dict[str, Any], path: str, tasks: set[str], extra: set[str]) -> tuple[str, int]:
    keys = {"task", "t_release_ns"} | extra
    if set(entry) != keys:
        raise ConfigError(path, f"keys {sorted(keys)}", repr(sorted(entry)))
    task, t_release_ns = entry["task"], entry["t_release_ns"]
    if not isinstance(task, str) or task not in tasks:
        raise ConfigError(f"{path}.task", f"a periodic task of the mission ({sorted(tasks)})",
                          repr(task))
    if type(t_release_ns) is not int or t_release_ns < 0:
        raise ConfigError(f"{path}.t_release_ns", "an integer >= 0 (ns)", repr(t_release_ns))
    return task, t_release_ns
