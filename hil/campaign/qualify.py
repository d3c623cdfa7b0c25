"""``flightai hil qualify``: a contributed model judged against the flight baseline.

The candidate first passes the model contract (:mod:`.contract`); then the same
campaign is flown with the baseline mission and with the candidate swapped into
its slot (``--set models.<name>.file=... models.<name>.sha256=...``), on
identical seeds, and the cases are compared in pairs:

* **binary criteria** (success; learned model in command through phase A):
  exact McNemar test on the discordant pairs, two-sided, α = 0.05. A
  significant difference makes the criterion *better* or *worse*; otherwise
  *no difference* (which does not block equivalence: proving equivalence of
  rates needs thousands of cases; the campaigns' Clopper–Pearson intervals are
  in the scorecard).
* **continuous criteria** (lower is better): the 95 % sign-test interval of
  the median paired difference (candidate − baseline) against a declared
  equivalence margin δ: *worse* when the interval lies above +δ, *better* below
  −δ, *equivalent* inside [−δ, +δ], else *inconclusive*. Fewer than 6 pairs
  give no 95 % interval: inconclusive.
* **verdict**: *rejected* if the contract fails; *worse* if any criterion is
  worse; *better* if some are better and none worse or inconclusive;
  *equivalent* if every continuous criterion is equivalent and no binary one
  differs; else *inconclusive* (fly more cases).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hil.campaign.cases import CampaignSpec
from hil.campaign.contract import check_contract, role_model
from hil.campaign.report import page, table
from hil.campaign.stats import clopper_pearson, mcnemar_exact, sign_test_interval
from hil.campaign.store import write_atomic

ALPHA = 0.05


@dataclass(frozen=True)
class Criterion:
    """One paired criterion: a flight-record field, its kind and its equivalence margin."""

    field: str
    label: str
    binary: bool
    margin: float = 0.0
    unit: str = ""


CRITERIA = (
    Criterion("success", "mission success", True),
    Criterion("learned_guidance", "learned guidance in command through phase A "
                                  "(runtime assurance never latched)", True),
    Criterion("landing_error_m", "miss distance", False, 2.0, "m"),
    Criterion("vertical_speed_mps", "touchdown vertical speed", False, 0.1, "m/s"),
    Criterion("horizontal_speed_mps", "touchdown horizontal speed", False, 0.1, "m/s"),
    Criterion("propellant_kg", "fuel used", False, 1.0, "kg"),
    Criterion("nav_error_m", "navigation error at touchdown", False, 2.0, "m"),
)
"""The declared criteria and margins (``docs/campaigns.md``)."""


def judge(criterion: Criterion, baseline: list[dict[str, Any]],
          candidate: list[dict[str, Any]]) -> dict[str, Any]:
    """One criterion over paired flight records (same index, same seed)."""
    base = [r[criterion.field] for r in baseline]
    cand = [r[criterion.field] for r in candidate]
    out: dict[str, Any] = {**asdict(criterion)}
    if criterion.binary:
        only_base = sum(b and not c for b, c in zip(base, cand, strict=True))
        only_cand = sum(c and not b for b, c in zip(base, cand, strict=True))
        p = mcnemar_exact(only_base, only_cand)
        verdict = ("no difference" if p >= ALPHA
                   else "worse" if only_base > only_cand else "better")
        out.update(baseline=sum(base), candidate=sum(cand), only_baseline=only_base,
                   only_candidate=only_cand, p_value=p, verdict=verdict)
        return out
    differences = [c - b for b, c in zip(base, cand, strict=True)]
    low, high = sign_test_interval(differences)
    m = criterion.margin
    if low is None or high is None:
        verdict = "inconclusive"
    elif low > m:
        verdict = "worse"
    elif high < -m:
        verdict = "better"
    elif -m <= low and high <= m:
        verdict = "equivalent"
    else:
        verdict = "inconclusive"
    ordered = sorted(differences)
    out.update(baseline_median=sorted(base)[len(base) // 2],
               candidate_median=sorted(cand)[len(cand) // 2],
               median_difference=ordered[len(ordered) // 2], ci95=[low, high], verdict=verdict)
    return out


def overall(verdicts: list[str]) -> str:
    """The qualification verdict from the criteria's (module docstring)."""
    if "worse" in verdicts:
        return "worse"
    if "inconclusive" in verdicts:
        return "inconclusive"
    if "better" in verdicts:
        return "better"
    return "equivalent"


def candidate_overrides(mission: Path, role: str, candidate: Path) -> list[str]:
    """The ``--set`` items that swap ``candidate`` into ``role``'s slot."""
    from flightai.config.loader import load_mission

    name = role_model(load_mission(mission), role).name
    sha = hashlib.sha256(candidate.read_bytes()).hexdigest()
    path = json.dumps(str(candidate.resolve()))  # a TOML basic string, quotes escaped
    return [f"models.{name}.file={path}", f"models.{name}.sha256={sha}"]


def qualify(candidate: Path, role: str, mission: Path, out: Path,
            cluster: Callable[[], AbstractContextManager[Any]], *, cases: int,
            entropy: int = 1, stress_sun: bool = False, progress: Any = None,
            ) -> dict[str, Any]:
    """Contract checks, the two campaigns and the paired verdict; writes the scorecard.

    ``cluster()`` gives the Dask client as a context; it is opened only when
    the contract passes.

    The baseline's cases go to ``out/baseline``, the candidate's to
    ``out/candidate-<sha256[:12]>`` and the scorecard to
    ``out/scorecard-<sha256[:12]>.{json,html}``: both campaigns resume, and
    several candidates qualified into one ``out`` share one baseline.
    """
    from flightai.config.loader import load_mission
    from hil.campaign.runner import run_campaign

    checks, measures = check_contract(candidate, role, load_mission(mission))
    card: dict[str, Any] = {
        "candidate": str(candidate), "role": role, "sha256": measures["sha256"],
        "mission": str(mission), "cases": cases, "entropy": entropy, "stress_sun": stress_sun,
        "contract": [asdict(c) for c in checks], "measures": measures}
    if any(c.ok is False for c in checks):
        card["verdict"] = "rejected"
        return _write(out, card)
    runs = {}
    with cluster() as client:
        for name, overrides in (("baseline", []),
                                (f"candidate-{measures['sha256'][:12]}",
                                 candidate_overrides(mission, role, candidate))):
            spec = CampaignSpec.from_file(mission, overrides=overrides, entropy=entropy,
                                          cases=cases, stress_sun=stress_sun)
            runs[name] = run_campaign(spec, out / name, client, progress=progress)
    base_run, cand_run = runs.values()
    for b, c in zip(base_run.cases, cand_run.cases, strict=True):
        assert b["seed"] == c["seed"] and b["dispersion"] == c["dispersion"], "unpaired cases"
    base = [c["record"] for c in base_run.cases]
    cand = [c["record"] for c in cand_run.cases]
    criteria = [judge(criterion, base, cand) for criterion in CRITERIA]
    card["criteria"] = criteria
    card["success"] = {
        name: {"successes": r.report["successes"], "runs": r.report["runs"],
               "ci95": list(clopper_pearson(r.report["successes"], r.report["runs"]))}
        for name, r in (("baseline", base_run), ("candidate", cand_run))}
    card["campaigns"] = {name: r.report["campaign"]["campaign_id"] for name, r in runs.items()}
    card["pairs"] = [{"index": b["index"], "replay_baseline": b["replay"],
                      "replay_candidate": c["replay"],
                      **{k.field: [b["record"][k.field], c["record"][k.field]]
                         for k in CRITERIA}}
                     for b, c in zip(base_run.cases, cand_run.cases, strict=True)]
    card["verdict"] = overall([c["verdict"] for c in criteria])
    return _write(out, card)


def scorecard_path(out: Path, sha256: str, suffix: str) -> Path:
    """Where a candidate's scorecard goes: one per candidate, so they can share ``out``."""
    return out / f"scorecard-{sha256[:12]}.{suffix}"


def _write(out: Path, card: dict[str, Any]) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(scorecard_path(out, card["sha256"], "json"), json.dumps(card, indent=1) + "\n")
    write_atomic(scorecard_path(out, card["sha256"], "html"), scorecard_html(card))
    return card


def _num(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def scorecard_html(card: dict[str, Any]) -> str:
    """The scorecard as one HTML page."""
    mark = {True: "pass", False: "FAIL", None: "reported"}
    parts = [f"<h1>Qualification of {card['candidate']} ({card['role']}): "
             f"{card['verdict'].upper()}</h1>",
             f"<p>SHA-256 <code>{card['sha256']}</code>; mission {card['mission']}; "
             f"{card['cases']} paired cases, entropy {card['entropy']}"
             f"{', stress sun' if card['stress_sun'] else ''}.</p>",
             "<h2>Contract</h2>",
             table(["check", "result", "detail"],
                   [[c["name"], mark[c["ok"]], c["detail"]] for c in card["contract"]])]
    if "criteria" in card:
        parts += ["<h2>Paired criteria (candidate − baseline)</h2>",
                  table(["criterion", "margin", "baseline", "candidate", "statistic", "verdict"],
                        [_criterion_row(c) for c in card["criteria"]]),
                  "<h2>Cases</h2>",
                  table(["case", *(c.field for c in CRITERIA), "replay (candidate)"],
                        [[p["index"], *(" → ".join(_num(v) for v in p[c.field])
                                        for c in CRITERIA), p["replay_candidate"]]
                         for p in card["pairs"]])]
    return page(f"qualification {card['sha256'][:12]}", "\n".join(parts))


def _criterion_row(c: dict[str, Any]) -> list[str]:
    if c["binary"]:
        return [c["label"], "-", str(c["baseline"]), str(c["candidate"]),
                f"discordant {c['only_baseline']} / {c['only_candidate']}, "
                f"McNemar p = {c['p_value']:.3g}", c["verdict"]]
    low, high = c["ci95"]
    interval = "none (< 6 pairs)" if low is None else f"[{low:.3g}, {high:.3g}]"
    return [c["label"], f"±{c['margin']:g} {c['unit']}", _num(c["baseline_median"]),
            _num(c["candidate_median"]),
            f"median diff {c['median_difference']:.3g}, 95 % CI {interval}", c["verdict"]]
