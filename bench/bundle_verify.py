"""Verify-and-load time of the signed L2 bundle against loading the plain L2 mission.

Interleaved ``--repeat`` times in one process, on the same files:

* ``plain`` (the baseline): ``load_mission(models/ltd1/l2.toml)`` then ``load_tasks``:
  each model read and hashed, sessions built, Python tasks imported, the 4.5 MB map
  read by the two factories that use it;
* ``bundle``: ``open_bundle`` (read the file once, check the Ed25519 signature and
  every file's size and SHA-256, refuse a rollback, write code and map into a
  private folder, parse the signed config) then the same ``load_tasks``, the
  models from the verified bytes;
* ``verify only``: reading and verifying the bundle, nothing loaded.

Python task modules are dropped from ``sys.modules`` before each load so that
both paths import them afresh. Writes ``bench/results/bundle_verify.json``.

    python bench/bundle_verify.py [--quick] [--repeat N]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

from flightai.bundle.build import build_bundle
from flightai.bundle.keys import generate, load_signing_key, load_trusted
from flightai.bundle.mission import open_bundle
from flightai.bundle.verify import read_bundle_file, verify_bundle
from flightai.config import load_mission
from flightai.runtime import load_tasks

L2 = common.REPO_ROOT / "models" / "ltd1" / "l2.toml"


def _forget_user_modules() -> None:
    for name in [n for n in sys.modules if n.startswith("flightai_user_")]:
        del sys.modules[name]


def _ms(start_ns: int) -> float:
    return (time.perf_counter_ns() - start_ns) / 1e6


def main() -> None:
    parser = common.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    repeat = 3 if args.quick else args.repeat
    with tempfile.TemporaryDirectory() as tmp:
        secret, public = generate(Path(tmp), "bench")
        trusted = load_trusted([public])
        start = time.perf_counter_ns()
        data, manifest = build_bundle(L2, load_signing_key(secret), 1, ["maps/ltd1-map.npz"])
        build_ms = _ms(start)
        bundle = Path(tmp) / "l2.bundle"
        bundle.write_bytes(data)
        times: dict[str, list[float]] = {"plain": [], "bundle": [], "verify only": []}
        for _ in range(repeat):
            _forget_user_modules()
            start = time.perf_counter_ns()
            load_tasks(load_mission(L2))
            times["plain"].append(_ms(start))
            _forget_user_modules()
            start = time.perf_counter_ns()
            opened = open_bundle(bundle, trusted, None)
            load_tasks(opened.config)
            times["bundle"].append(_ms(start))
            opened.close()
            start = time.perf_counter_ns()
            verify_bundle(read_bundle_file(bundle), trusted)
            times["verify only"].append(_ms(start))
    medians = {k: round(statistics.median(v), 2) for k, v in times.items()}
    extra = round(medians["bundle"] - medians["plain"], 2)
    rows = [(k, medians[k], round(min(v), 2), round(max(v), 2)) for k, v in times.items()]
    print(f"L2 bundle: {len(manifest.files)} files, {len(data)} bytes, built in {build_ms:.1f} ms")
    common.print_table(["path", "median ms", "min ms", "max ms"], rows)
    print(f"bundle - plain: {extra:+.2f} ms per load (median), "
          f"{100 * extra / medians['plain']:+.1f} %")
    path = common.write_json("bundle_verify", {
        "repeat": repeat, "bundle_bytes": len(data), "files": len(manifest.files),
        "build_ms": round(build_ms, 2), "median_ms": medians,
        "samples_ms": {k: [round(x, 2) for x in v] for k, v in times.items()},
        "bundle_minus_plain_ms": extra, "loadavg": common.loadavg(),
        "platform": common.platform_block()})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
