"""Fly one campaign case on a worker: models loaded once per worker thread, tasks fresh per case.

onnxruntime sessions are never pickled: each worker process builds them on
first use and keeps them in :data:`_SESSIONS`, keyed by the thread, the task
and the model's full configuration (file, SHA-256, options), so a changed
model or option loads anew. Each thread keeps the last :data:`KEEP_PER_TASK`
configurations of a task (a qualification's baseline and candidate) and drops
older ones, so a long-lived worker that flies campaign after campaign with new
models does not grow without bound. A session is a pure function of its input (model
contract), so reusing one gives the same outputs as a fresh load; the Python
tasks (navigation filter, command, TRN preparation) carry state and are built
fresh for every case.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from flightai.config.loader import parse_mission
from flightai.config.overrides import apply_overrides
from flightai.config.schema import MissionConfig, ModelConfig
from flightai.infer.model_task import ModelTask
from flightai.runtime import LoadedTasks, load_tasks
from hil.campaign.cases import CampaignSpec, CaseSpec
from hil.ltd1.dispersions import draw_case
from hil.ltd1.loop import fly
from hil.record.fingerprint import fingerprint

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

KEEP_PER_TASK = 2
"""Model configurations of one task kept loaded per worker thread (least recent dropped)."""

_SESSIONS: OrderedDict[tuple[int, str, str], ModelTask] = OrderedDict()
"""This process's loaded models: (thread id, task, repr of the model config) -> task,
least recently used first."""


def campaign_config(campaign: CampaignSpec) -> MissionConfig:
    """The mission the campaign flies: its text with its overrides, paths from its folder."""
    data = apply_overrides(tomllib.loads(campaign.mission_text), campaign.overrides)
    return parse_mission(data, Path(campaign.base_dir))


def load_tasks_cached(config: MissionConfig) -> LoadedTasks:
    """Every task of ``config``: models from this thread's cache, Python tasks built fresh.

    Raises:
        ModelError: a model is refused (hash, signature, provider, onnxruntime).
        TaskError: a Python task cannot be imported or built.
    """
    return load_tasks(config, _cached_model)


def _cached_model(task: str, model: ModelConfig) -> ModelTask:
    """The calling thread's session for ``task`` running ``model``, loaded on first use."""
    thread = threading.get_ident()
    key = (thread, task, repr(model))
    loaded = _SESSIONS.get(key)
    if loaded is not None:
        _SESSIONS.move_to_end(key)
        return loaded
    loaded = _SESSIONS[key] = ModelTask.load(model)
    same_task = [k for k in _SESSIONS if k[0] == thread and k[1] == task]
    for old in same_task[:-KEEP_PER_TASK]:
        del _SESSIONS[old]
    return loaded


def fly_case(case: CaseSpec, session: str = "", *, cached: bool = True) -> dict[str, Any]:
    """Fly one case in-process on the fast clock; its full record as plain data.

    Args:
        case: the case.
        session: the id of the run that submitted it (kept under ``run``).
        cached: reuse this worker's sessions (False: load every model afresh).

    Returns:
        ``key``, ``index``, ``seed``, ``dispersion``, ``config``, ``models``,
        ``platform``, ``record`` (:meth:`FlightRecord.to_json`), ``replay`` (the
        one-line command) and ``run`` (wall time, CPU time of the process, host,
        pid, session: how it ran, not what it gave).
    """
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    campaign = case.campaign
    config = campaign_config(campaign)
    loaded = load_tasks_cached(config) if cached else None
    dispersed = draw_case(case.seed, nominal=campaign.nominal, stress_sun=campaign.stress_sun)
    record = fly(config, dispersed, loaded=loaded)
    return {
        "key": case.key,
        "index": case.index,
        "seed": case.seed_record(),
        "dispersion": dataclasses.asdict(dispersed),
        "config": {"mission": campaign.mission, **campaign.config_identity()},
        "models": {m.name: m.sha256 for m in config.models},
        "platform": fingerprint(),
        "record": record.to_json(),
        "replay": case.replay_command(),
        "run": {"wall_s": round(time.perf_counter() - wall_start, 3),
                "cpu_s": round(time.process_time() - cpu_start, 3),
                "host": socket.gethostname(), "pid": os.getpid(), "session": session},
    }
