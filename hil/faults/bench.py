"""A fault plan on the bench: what ``flightai demo --faults PLAN.toml`` sets up.

* the stub sends its samples through an :class:`~hil.faults.injector.Injector`
  (sensor and transport faults, on the real multipart messages);
* the model faults are expanded to jobs and written to ``injections.json`` in
  the output folder; the runtime child reads it with ``--inject-faults``, armed
  by ``FLIGHTAI_FAULT_INJECTION=1`` in its environment only;
* with ``--record``, the plan and every application go into the recording
  (:mod:`hil.faults.record`);
* at the end, ``faults.json`` in the output folder lists every application.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from flightai.config.schema import MissionConfig
from flightai.inject import ENV_GATE
from hil.faults.injector import Injector
from hil.faults.log import Applied
from hil.faults.models import model_injections
from hil.faults.plan import load_plan
from hil.faults.record import FaultChannel
from hil.ltd1.constants import MAX_MISSION_NS

if TYPE_CHECKING:
    from hil.record.recorder import Recorder


class BenchFaults:
    """A plan's faults set up for one bench run.

    Args:
        plan_path: the plan file.
        config: the mission the runtime runs.
        out: the run's output folder (``injections.json``, ``faults.json``).

    Raises:
        ConfigError: the plan is invalid, or names what the mission does not have.

    Attributes:
        injector: sensor and transport faults, for the stub's ``outbound``.
        runtime_args: options for ``flightai run``.
        runtime_env: environment for the runtime process.
    """

    def __init__(self, plan_path: Path, config: MissionConfig, out: Path) -> None:
        self.plan = load_plan(plan_path)
        self._out = out
        self._injections, self._model_log = model_injections(self.plan, config, MAX_MISSION_NS)
        self._channel: FaultChannel | None = None
        self.injector = Injector(self.plan, config, on_applied=self._applied)
        inject_file = out / "injections.json"
        inject_file.write_text(json.dumps(self._injections.to_json(), indent=1) + "\n")
        self.runtime_args = ["--inject-faults", str(inject_file)]
        self.runtime_env = {ENV_GATE: "1"}

    def record_to(self, recorder: Recorder) -> None:
        """Write the plan and every application to ``recorder`` from now on."""
        self._channel = FaultChannel(recorder, self.plan, self._injections, MAX_MISSION_NS)

    def _applied(self, applied: Applied) -> None:
        if self._channel is not None:
            self._channel(applied)

    def finish(self, end_ns: int) -> list[Applied]:
        """Log the model faults of the frames run (before ``end_ns``); write ``faults.json``."""
        model = [a for a in self._model_log if a.t_ns < end_ns]
        for applied in model:
            self._applied(applied)
        log = sorted(self.injector.log + model, key=lambda a: a.t_ns)
        (self._out / "faults.json").write_text(json.dumps(
            {"plan": self.plan.path, "seed": self.plan.seed,
             "applied": [asdict(a) for a in log]}, indent=1) + "\n")
        return log
