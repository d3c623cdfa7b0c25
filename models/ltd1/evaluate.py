"""Fly a fixed set of seeded dispersed LTD-1 cases with one configuration; write the results.

    python models/ltd1/evaluate.py l2 --seeds 1-50 [--stress-sun]

Writes ``models/ltd1/results/<config>[-stress].json`` (every case's record and
the summary) and prints the summary table row used in the model cards. Each
case is one in-process descent on the fast clock (``hil.ltd1.loop.fly``); any
case can be flown alone, over the bus, with ``flightai demo --config <config>
--seed <seed>``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from hil.ltd1.dispersions import draw_case
from hil.ltd1.loop import fly
from hil.ltd1.summary import summarize

HERE = Path(__file__).resolve().parent


def _seeds(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def main() -> None:
    """Fly the cases and write the results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", choices=["l2", "b1"])
    parser.add_argument("--seeds", type=_seeds, default=_seeds("1-50"))
    parser.add_argument("--stress-sun", action="store_true",
                        help="sun dispersed ±15° elevation / ±45° azimuth (1σ)")
    args = parser.parse_args()
    records = []
    wall_start = time.monotonic()
    for seed in args.seeds:
        record = fly(HERE / f"{args.config}.toml", draw_case(seed, stress_sun=args.stress_sun))
        records.append(record)
        print(f"seed {seed:3d}: {'ok  ' if record.success else 'FAIL'} landing "
              f"{record.landing_error_m:6.1f} m nav {record.nav_error_m:6.1f} m "
              f"vz {record.vertical_speed_mps:4.2f} prop {record.propellant_kg:5.1f} kg "
              + "; ".join(record.failures()), flush=True)
    summary = summarize(records)
    summary["wall_s_per_case"] = round((time.monotonic() - wall_start) / len(records), 2)
    name = args.config + ("-stress" if args.stress_sun else "")
    out = HERE / "results" / f"{name}.json"
    out.write_text(json.dumps({"config": args.config, "stress_sun": args.stress_sun,
                               "summary": summary,
                               "cases": [r.to_json() for r in records]}, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
