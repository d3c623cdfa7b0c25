"""The campaign's aggregate: JSON for machines, one self-contained HTML page for people.

The JSON holds only what the cases decide (no wall times), so the same
campaign gives the same ``report.json`` on any number of workers, after a
worker died, or after a resume. Plots are drawn with matplotlib's Agg canvas
(no display, no pyplot state) and embedded as base64 PNG.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from hil.campaign.stats import clopper_pearson
from hil.ltd1 import criteria
from hil.ltd1.summary import failure_rate_upper_bound

METRICS = {
    "landing_error_m": ("miss distance", "m", criteria.MAX_LANDING_ERROR_M),
    "vertical_speed_mps": ("touchdown vertical speed", "m/s", criteria.MAX_VERTICAL_SPEED_MPS),
    "horizontal_speed_mps": ("touchdown horizontal speed", "m/s",
                             criteria.MAX_HORIZONTAL_SPEED_MPS),
    "propellant_kg": ("fuel used", "kg", criteria.MAX_PROPELLANT_KG),
    "nav_error_m": ("navigation error at touchdown", "m", criteria.MAX_NAV_ERROR_M),
}
"""Flight-record field -> (label, unit, LTD-1 limit)."""


def distribution(values: Sequence[float]) -> dict[str, float]:
    """Count, mean, standard deviation and quantiles of one metric."""
    a = np.asarray(values, dtype=np.float64)
    q = np.percentile(a, [0, 5, 50, 90, 95, 99, 100])
    return {"n": int(a.size), "mean": float(a.mean()), "std": float(a.std()),
            "min": float(q[0]), "p5": float(q[1]), "median": float(q[2]), "p90": float(q[3]),
            "p95": float(q[4]), "p99": float(q[5]), "max": float(q[6])}


def aggregate(manifest: dict[str, Any], cases: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The campaign report from its manifest and its case records (index order)."""
    runs = len(cases)
    successes = sum(c["record"]["success"] for c in cases)
    low, high = clopper_pearson(successes, runs)
    records = [c["record"] for c in cases]
    return {
        "campaign": manifest,
        "runs": runs,
        "successes": successes,
        "success_rate": successes / runs,
        "success_rate_ci95": [low, high],
        "failure_rate_upper_95": failure_rate_upper_bound(runs - successes, runs),
        "learned_guidance_in_command": sum(r["learned_guidance"] for r in records),
        "overruns": sum(r["overruns"] for r in records),
        "hard_overruns": sum(r["hard_overruns"] for r in records),
        "distributions": {m: distribution([r[m] for r in records]) for m in METRICS},
        "models": [list(m) for m in sorted({(name, sha) for c in cases
                                            for name, sha in c["models"].items()})],
        "platforms": len({c["platform"]["cpu_flags_sha256"] + c["platform"]["cpu_model"]
                          for c in cases}),
        "failures": [{"index": c["index"], "key": c["key"], "failures": c["record"]["failures"],
                      "replay": c["replay"]} for c in cases if not c["record"]["success"]],
        "digests": [c["record"]["digest"] for c in cases],
    }


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return base64.b64encode(buffer.getvalue()).decode()


def plots(cases: Sequence[dict[str, Any]]) -> str:
    """Histograms of every metric with its LTD-1 limit, as an embedded PNG ``<img>``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 6.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(2, 3).ravel()
    for ax, (metric, (label, unit, limit)) in zip(axes, METRICS.items(), strict=False):
        values = [c["record"][metric] for c in cases]
        ax.hist(values, bins=max(5, min(40, len(values) // 2)), color="#4477aa")
        ax.axvline(limit, color="#cc3311", linestyle="--", label=f"limit {limit:g} {unit}")
        ax.set_xlabel(f"{label} ({unit})")
        ax.set_ylabel("cases")
        ax.legend(fontsize="small")
    success = [c["record"]["success"] for c in cases]
    axes[-1].scatter([c["record"]["landing_error_m"] for c in cases],
                     [c["record"]["horizontal_speed_mps"] for c in cases],
                     c=["#228833" if s else "#cc3311" for s in success], s=14)
    axes[-1].set_xlabel("miss distance (m)")
    axes[-1].set_ylabel("touchdown horizontal speed (m/s)")
    axes[-1].set_title("green: success, red: failure", fontsize="small")
    return f'<img alt="distributions" src="data:image/png;base64,{_png(figure)}">'


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An HTML table, every cell escaped."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title><style>
body{{font-family:sans-serif;margin:2em;max-width:80em}}
table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:.2em .5em;text-align:right;font-size:90%}}
code{{font-size:85%}} .bad{{color:#c31}} .good{{color:#283}}
</style></head><body>{body}</body></html>
"""


def page(title: str, body: str) -> str:
    """A self-contained HTML page."""
    return PAGE.format(title=html.escape(title), body=body)


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def to_html(report: dict[str, Any], cases: Sequence[dict[str, Any]],
            timing: dict[str, Any] | None = None) -> str:
    """The report as one HTML page (plots embedded)."""
    camp = report["campaign"]
    low, high = report["success_rate_ci95"]
    parts = [
        f"<h1>LTD-1 campaign {html.escape(camp['campaign_id'][:12])}</h1>",
        table(["mission", "overrides", "entropy", "cases", "stress sun", "nominal"],
              [[camp["mission"], " ".join(camp["overrides"]) or "-", camp["entropy"],
                camp["cases"], camp["stress_sun"], camp["nominal"]]]),
        f"<h2>Success {report['successes']} / {report['runs']} "
        f"({100 * report['success_rate']:.1f} %, 95 % CI {100 * low:.1f}–{100 * high:.1f} %)"
        "</h2>",
        f"<p>Failure rate ≤ {100 * report['failure_rate_upper_95']:.1f} % (one-sided 95 %, "
        f"Clopper–Pearson). Learned guidance in command through phase A in "
        f"{report['learned_guidance_in_command']} cases; {report['overruns']} deadline misses "
        f"({report['hard_overruns']} hard).</p>",
        table(["metric", "unit", "limit", "median", "p90", "p99", "max", "mean", "std"],
              [[METRICS[m][0], METRICS[m][1], METRICS[m][2],
                *(_fmt(d[k]) for k in ("median", "p90", "p99", "max", "mean", "std"))]
               for m, d in report["distributions"].items()]),
        plots(cases),
        "<h2>Failures</h2>",
        table(["case", "failures", "replay alone"],
              [[f["index"], "; ".join(f["failures"]), f["replay"]] for f in report["failures"]])
        if report["failures"] else "<p>None.</p>",
        "<h2>Cases</h2>",
        table(["case", "success", "miss (m)", "v (m/s)", "h (m/s)", "fuel (kg)", "nav (m)",
               "learned", "digest"],
              [[c["index"], c["record"]["success"], *(_fmt(c["record"][m]) for m in METRICS),
                c["record"]["learned_guidance"], c["record"]["digest"][:12]] for c in cases]),
        "<h2>Models</h2>",
        table(["model", "SHA-256"], report["models"]),
    ]
    if timing:
        parts += ["<h2>This run</h2>", table(list(timing), [list(timing.values())])]
    return page(f"campaign {camp['campaign_id'][:12]}", "\n".join(parts))
