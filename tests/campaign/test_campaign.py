"""Campaigns on a real local Dask cluster: the same result on 1 and 2 workers, after a worker
is killed mid-case, and after an interrupted run is resumed (finished cases not flown again)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from distributed import Client

from hil.campaign.cases import CampaignSpec
from hil.campaign.cluster import open_client
from hil.campaign.runner import run_campaign
from tests.campaign.conftest import CASES, ENTROPY, ROOT, outcome
from tests.integration.bus_harness import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reference(spec: CampaignSpec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The campaign flown on one worker."""
    out = tmp_path_factory.mktemp("one-worker")
    with open_client(workers=1) as client:
        result = run_campaign(spec, out, client)
    assert result.timing["workers"] == 1 and result.timing["cases_run"] == CASES
    return out


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    """A two-worker local cluster (processes, loopback, one thread each)."""
    with open_client(workers=2) as c:
        yield c


def test_two_workers_give_the_one_worker_result(
        reference: Path, client: Client, spec: CampaignSpec, tmp_path: Path) -> None:
    assert client.run(lambda: os.environ["OPENBLAS_NUM_THREADS"]) == {
        w: "1" for w in client.nthreads()}
    result = run_campaign(spec, tmp_path, client)
    assert result.timing["workers"] == 2
    assert {c["run"]["pid"] for c in result.cases} == set(client.run(os.getpid).values())
    assert outcome(tmp_path) == outcome(reference)
    report = result.report
    assert report["runs"] == CASES and len(set(report["digests"])) == CASES
    assert 0.0 <= report["success_rate_ci95"][0] <= report["success_rate"] <= 1.0
    assert (tmp_path / "report.html").read_text().count("data:image/png;base64,") == 1


def test_the_replay_command_flies_a_case_alone_with_fresh_models(reference: Path) -> None:
    """The last case ran on a worker that had flown another before (cached sessions)."""
    record = json.loads(sorted((reference / "cases").glob("*.json"))[-1].read_text())
    command = record["replay"].split()
    assert command[:3] == ["flightai", "hil", "case"]
    alone = reference / "alone.json"
    done = subprocess.run([sys.executable, "-m", "flightai", *command[1:], "--json", str(alone)],
                          cwd=reference, capture_output=True,  # not the mission's folder
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"output digest {record['record']['digest']}" in done.stdout
    flown = json.loads(alone.read_text())
    flown.pop("run"), record.pop("run")
    assert flown == record


def test_workers_keep_one_blas_thread_and_glibcs_own_heap_trimming(client: Client) -> None:
    assert set(client.run(os.getenv, "OPENBLAS_NUM_THREADS").values()) == {"1"}
    # Dask's nanny sets 65536 by default: every freed camera image went back to the OS
    assert set(client.run(os.getenv, "MALLOC_TRIM_THRESHOLD_").values()) == {None}


def _pids(client: Client) -> dict[str, int]:
    pids: dict[str, int] = client.run(os.getpid)
    return pids


def test_a_worker_killed_mid_case_changes_nothing(
        reference: Path, client: Client, spec: CampaignSpec, tmp_path: Path) -> None:
    killed: dict[str, Any] = {}

    def kill_one_mid_case() -> None:
        with Client(client.scheduler.address) as watcher:
            def kill_if_still_busy() -> bool:
                """Kill a worker whose cases did not change over 1 s: it is inside one.

                Retried: a case may end during the second (the watcher may first see
                a worker late in its case), and then the next one is tried.
                """
                busy = [(w, k) for w, k in watcher.processing().items() if k]
                if not busy:
                    return False
                worker, keys = busy[0]
                pids = _pids(watcher)
                threading.Event().wait(1.0)
                if keys != watcher.processing().get(worker):
                    return False
                os.kill(pids[worker], signal.SIGKILL)
                killed.update(pid=pids[worker], keys=list(keys))
                return True
            wait_for(kill_if_still_busy, 120)

    killer = threading.Thread(target=kill_one_mid_case)
    killer.start()
    result = run_campaign(spec, tmp_path, client)
    killer.join()
    assert killed, "no case was running long enough to be killed"
    redone = [c for c in result.cases if c["key"] in killed["keys"]]
    assert redone and all(c["run"]["pid"] != killed["pid"] for c in redone)
    assert outcome(tmp_path) == outcome(reference)
    assert wait_for(lambda: len(client.nthreads()) == 2, 120)  # the nanny restarted it


def test_an_interrupted_run_resumes_without_flying_finished_cases_again(
        reference: Path, client: Client, spec: CampaignSpec, mission: Path,
        tmp_path: Path) -> None:
    command = [sys.executable, "-m", "flightai", "hil", "campaign", "--mission", str(mission),
               "--cases", str(CASES), "--seed", str(ENTROPY), "--workers", "1",
               "--no-progress", "--out", str(tmp_path)]
    child = subprocess.Popen(command, cwd=ROOT, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        started = wait_for(lambda: any((tmp_path / "cases").glob("*.json")), 240)
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # the campaign, its nanny and its worker
        child.wait(60)
    assert started
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, json.loads(p.read_text()))
              for p in (tmp_path / "cases").glob("*.json")}
    assert 1 <= len(before) < CASES
    assert not (tmp_path / "report.json").exists()
    result = run_campaign(spec, tmp_path, client)
    assert result.timing["cases_skipped"] == len(before)
    assert result.timing["cases_run"] == CASES - len(before)
    for name, (inode, mtime_ns, record) in before.items():
        path = tmp_path / "cases" / name
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == (inode, mtime_ns)
        assert record["run"]["session"] != result.timing["session"]
    new = [c for c in result.cases if f"{c['key']}.json" not in before]
    assert new and all(c["run"]["session"] == result.timing["session"] for c in new)
    assert outcome(tmp_path) == outcome(reference)
