"""Drive a campaign on a Dask cluster: submit the cases not yet stored, store each as it lands.

Each case is submitted under its own key (:attr:`CaseSpec.key`), so Dask's
de-duplication of equal tasks can never merge two cases, and a key seen twice
means the very same computation. A worker that dies mid-case loses nothing:
the scheduler runs the case again elsewhere and, the case being deterministic,
it gives the same record. Results are stored by the driver as they complete,
so an interrupted run keeps every finished case and a re-run skips them.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distributed import Client

from hil.campaign.cases import CampaignSpec
from hil.campaign.cluster import collect
from hil.campaign.report import aggregate, to_html
from hil.campaign.store import ResultsStore, write_atomic
from hil.campaign.worker import fly_case


class CaseFailed(RuntimeError):
    """A case raised instead of giving a record (a configuration or code error)."""

    def __init__(self, key: str, replay: str, error: BaseException) -> None:
        super().__init__(f"{key}: {type(error).__name__}: {error}\n  fly it alone: {replay}")


@dataclass(frozen=True)
class CampaignResult:
    """A finished campaign.

    Attributes:
        cases: every case record, in index order.
        report: the aggregate (``report.json``).
        timing: this run's wall times and counts (``timing.json``).
    """

    cases: list[dict[str, Any]]
    report: dict[str, Any]
    timing: dict[str, Any]


Progress = Callable[[int, int], None]
"""Called with (cases stored, cases in the campaign) after each stored case."""


def run_campaign(spec: CampaignSpec, out: Path, client: Client, *,
                 progress: Progress | None = None) -> CampaignResult:
    """Fly every case of ``spec`` not yet in ``out`` on ``client``'s cluster; write the report.

    Raises:
        StoreMismatch: ``out`` holds another campaign.
        CaseFailed: a case raised (the cases finished before it stay stored).
    """
    store = ResultsStore(out, spec.manifest())
    cases = spec.all_cases()
    done = store.done()
    todo = [c for c in cases if c.key not in done]
    session = uuid.uuid4().hex
    stored = len(cases) - len(todo)
    if progress:
        progress(stored, len(cases))
    wall_start = time.perf_counter()
    futures = [client.submit(fly_case, case, session, key=case.key) for case in todo]
    replays = {c.key: c.replay_command() for c in todo}
    collect(client, futures, lambda f: store.put(f.result()),
            lambda f: CaseFailed(f.key, replays[f.key], f.exception()),
            stored, len(cases), progress)
    wall_s = time.perf_counter() - wall_start
    records = list(store.records([c.key for c in cases]))
    report = aggregate(spec.manifest(), records)
    timing = {"session": session, "workers": len(client.nthreads()),  # type: ignore[no-untyped-call]
              "cases_run": len(todo), "cases_skipped": len(cases) - len(todo),
              "wall_s": round(wall_s, 2),
              "cases_per_min": round(60 * len(todo) / wall_s, 2) if todo and wall_s else None}
    write_atomic(out / "report.json", json.dumps(report, indent=1) + "\n")
    write_atomic(out / "timing.json", json.dumps(timing, indent=1) + "\n")
    write_atomic(out / "report.html", to_html(report, records, timing))
    return CampaignResult(records, report, timing)
