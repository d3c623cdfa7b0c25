"""Campaign throughput: cases per minute on a Dask LocalCluster of 1 and 2 workers vs a plain loop.

The same dispersed L2 cases (one ``SeedSequence``) are flown four ways, in
interleaved rounds so the shared machine's load hits them alike:

* ``plain loop, fresh`` (the baseline, what ``models/ltd1/evaluate.py`` does):
  one process, ``hil.ltd1.loop.fly`` loading every model and task per case;
* ``plain loop, cached``: one process, the campaign's worker function with its
  per-thread session cache, no Dask;
* ``dask 1 worker`` and ``dask 2 workers``: ``run_campaign`` on a LocalCluster
  (processes, one thread each), from submission to the last case stored (the
  report and the cluster start-up are timed apart).

Every mode must give the same output digests. Scaling efficiency is
(2-worker rate / 1-worker rate) / 2; Dask efficiency is the 1-worker rate over
the cached plain loop's. A private copy of the mission folder is flown, and
this process uses one BLAS thread, like the workers.

    python bench/campaign_throughput.py [--quick] [--cases N] [--rounds R]
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as in the workers, before numpy loads
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

from hil.campaign.cases import CampaignSpec
from hil.campaign.cluster import open_client
from hil.campaign.runner import run_campaign
from hil.campaign.worker import campaign_config, fly_case
from hil.ltd1.dispersions import draw_case
from hil.ltd1.loop import fly

ENTROPY = 2026


Run = tuple[float, float, list[str], dict[str, float]]
"""Wall s, CPU s spent flying the cases, output digests, extra figures."""


def plain_fresh(spec: CampaignSpec) -> Run:
    """Every case flown with ``fly`` (models loaded per case), one process."""
    start, cpu = time.perf_counter(), time.process_time()
    digests = [fly(campaign_config(spec), draw_case(c.seed)).digest for c in spec.all_cases()]
    return time.perf_counter() - start, time.process_time() - cpu, digests, {}


def plain_cached(spec: CampaignSpec) -> Run:
    """Every case flown with the worker function and its session cache, one process."""
    start, cpu = time.perf_counter(), time.process_time()
    digests = [fly_case(c)["record"]["digest"] for c in spec.all_cases()]
    return time.perf_counter() - start, time.process_time() - cpu, digests, {}


def on_dask(spec: CampaignSpec, workers: int, folder: Path) -> Run:
    """The campaign on a fresh LocalCluster: wall of the cases alone, their CPU on the workers."""
    start = time.perf_counter()
    with open_client(workers=workers) as client:
        client.run(lambda: None)  # every worker up
        up = time.perf_counter()
        result = run_campaign(spec, folder, client)
        done = time.perf_counter()
    wall = float(result.timing["wall_s"])
    first: dict[int, float] = {}
    later = []
    for case in result.cases:  # index order: a worker flies its cases in submission order
        run = case["run"]
        if run["pid"] in first:
            later.append(run["cpu_s"])
        else:
            first[run["pid"]] = run["cpu_s"]
    return wall, sum(c["run"]["cpu_s"] for c in result.cases), [
        c["record"]["digest"] for c in result.cases], {
        "cluster_start_s": round(up - start, 2), "report_s": round(done - up - wall, 2),
        "first_case_cpu_s": round(statistics.median(first.values()), 2),
        "later_case_cpu_s": round(statistics.median(later), 2) if later else 0.0}


def main() -> None:
    """Fly the modes in interleaved rounds; print the table and write the JSON."""
    parser = common.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8, help="cases per mode (default 8)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    args = parser.parse_args()
    cases = 4 if args.quick else args.cases
    rounds = 1 if args.quick else args.rounds
    walls: dict[str, list[float]] = {m: [] for m in ("plain loop, fresh", "plain loop, cached",
                                                     "dask 1 worker", "dask 2 workers")}
    cpus: dict[str, list[float]] = {m: [] for m in walls}
    overheads: dict[str, list[dict[str, float]]] = {"dask 1 worker": [], "dask 2 workers": []}
    digests: dict[str, list[str]] = {}
    busy_before, load_before = common.cpu_times(), common.loadavg()
    with tempfile.TemporaryDirectory() as tmp:
        mission = Path(tmp) / "ltd1"
        shutil.copytree(common.REPO_ROOT / "models" / "ltd1", mission,
                        ignore=shutil.ignore_patterns("results", "__pycache__"))
        spec = CampaignSpec.from_file(mission / "l2.toml", entropy=ENTROPY, cases=cases)
        for r in range(rounds):
            order = list(walls)
            order = order[r % len(order):] + order[:r % len(order)]
            for mode in order:
                if mode.startswith("dask"):
                    workers = int(mode.split()[1])
                    wall, cpu, got, extra = on_dask(spec, workers, Path(tmp) / f"{r}-{workers}")
                    overheads[mode].append(extra)
                else:
                    wall, cpu, got, _ = (plain_fresh if "fresh" in mode else plain_cached)(spec)
                walls[mode].append(wall)
                cpus[mode].append(cpu)
                digests.setdefault(mode, got)
                assert got == digests[mode], f"{mode}: digests changed between rounds"
                print(f"round {r}: {mode}: {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
    identical = len({tuple(d) for d in digests.values()}) == 1
    rate = {m: 60 * cases / statistics.median(w) for m, w in walls.items()}
    scaling = rate["dask 2 workers"] / rate["dask 1 worker"] / 2
    dask_eff = rate["dask 1 worker"] / rate["plain loop, cached"]
    cpu_per_case = {m: statistics.median(c) / cases for m, c in cpus.items()}
    parallelism = {m: statistics.median(c) / statistics.median(walls[m]) for m, c in cpus.items()}
    rows = [[m, f"{statistics.median(w):.1f}", f"{rate[m]:.1f}",
             f"{rate[m] / rate['plain loop, fresh']:.2f}", f"{cpu_per_case[m]:.2f}",
             f"{parallelism[m]:.2f}"] for m, w in walls.items()]
    common.print_table(["mode", "median wall (s)", "cases/min", "vs plain fresh",
                        "CPU s/case", "cores used"], rows)
    print(f"scaling efficiency 1 -> 2 workers: {100 * scaling:.0f} %; dask 1 worker vs cached "
          f"plain loop: {100 * dask_eff:.0f} %; identical digests: {identical}")
    payload: dict[str, Any] = {
        "cases": cases, "rounds": rounds, "entropy": ENTROPY,
        "wall_s": {m: [round(x, 2) for x in w] for m, w in walls.items()},
        "cpu_s": {m: [round(x, 2) for x in c] for m, c in cpus.items()},
        "cases_per_min": {m: round(v, 2) for m, v in rate.items()},
        "cpu_s_per_case": {m: round(v, 3) for m, v in cpu_per_case.items()},
        "cores_used": {m: round(v, 2) for m, v in parallelism.items()},
        "scaling_efficiency_1_to_2": round(scaling, 3),
        "dask_1_worker_vs_plain_cached": round(dask_eff, 3),
        "dask_overheads": overheads, "identical_digests": identical,
        "cpu_busy": common.cpu_busy_fractions(busy_before, common.cpu_times()),
        "loadavg_before_after": [load_before, common.loadavg()],
        "commit": common.git_commit(), "platform": common.platform_block()}
    print(f"wrote {common.write_json('campaign_throughput', payload)}")


if __name__ == "__main__":
    main()
