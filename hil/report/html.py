"""The HTML report of a recording: verdicts, figures, events and the recording's metadata.

One self-contained file: figures are embedded PNG (``data:`` URIs), the style
is inline, nothing is fetched from the network, so it can be archived as a CI
artefact and opened anywhere.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from html import escape
from pathlib import Path

from flightai.timebase import NS_PER_S
from hil.record.recorder import META_CONFIG, META_MODELS, META_PLATFORM, META_RECORDER
from hil.report.plots import FIGURES
from hil.verdict.checks import CheckResult
from hil.verdict.streams import Streams

MAX_EVENT_ROWS = 500
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.pass { background: #e3f5e1; font-weight: bold; }
td.fail { background: #fbe0e0; font-weight: bold; }
.verdict { font-size: 1.4em; padding: 0.3em 0.6em; display: inline-block; }
.verdict.pass { background: #e3f5e1; } .verdict.fail { background: #fbe0e0; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
img { max-width: 100%; }
code, td.mono { font-family: ui-monospace, monospace; font-size: 0.9em; }
"""


def report_html(streams: Streams, results: Sequence[CheckResult], *, title: str,
                recording: str) -> str:
    """The report as one HTML document.

    Args:
        streams: the recording's decoded streams.
        results: the verdict's check results (may be empty).
        title: the verdict set's title.
        recording: the recording's file name, for the heading.
    """
    failed = sum(not r.passed for r in results)
    verdict = ("FAIL" if failed else "PASS") if results else "NO CHECKS"
    css = "fail" if failed else "pass"
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>flightai report: {escape(recording)}</title>",
        f"<style>{_STYLE}</style>", "</head>", "<body>",
        f"<h1>flightai report: <code>{escape(recording)}</code></h1>",
        f'<p><span class="verdict {css}">{verdict}</span> {escape(title)}: '
        f"{len(results) - failed} of {len(results)} checks pass; mission time "
        f"{_s(streams.span[0])} to {_s(streams.span[1])}, "
        f"{len(streams.recording.messages)} messages on {len(streams.topics())} topics.</p>",
        '<nav><a href="#verdicts">verdicts</a> | '
        + " | ".join(f'<a href="#{a}">{escape(t.lower())}</a>' for a, t, _ in FIGURES)
        + ' | <a href="#events">events</a> | <a href="#metadata">metadata</a></nav>',
        *_verdict_table(results), *_figures(streams), *_events(streams), *_metadata(streams),
        "</body>", "</html>"]
    return "\n".join(parts) + "\n"


def write_report(path: str | Path, streams: Streams, results: Sequence[CheckResult], *,
                 title: str, recording: str) -> None:
    """Write :func:`report_html` to ``path``."""
    Path(path).write_text(report_html(streams, results, title=title, recording=recording),
                          encoding="utf-8")


def _s(t_ns: int) -> str:
    return f"{t_ns / NS_PER_S:.3f} s"


def _verdict_table(results: Sequence[CheckResult]) -> list[str]:
    rows = ['<h2 id="verdicts">Verdicts</h2>', "<table>",
            "<tr><th>check</th><th>kind</th><th>result</th><th>what</th><th>reason</th></tr>"]
    for r in results:
        css, word = ("pass", "PASS") if r.passed else ("fail", "FAIL")
        rows.append(f"<tr><td><code>{escape(r.check.name)}</code></td>"
                    f"<td>{escape(r.check.kind)}</td><td class=\"{css}\">{word}</td>"
                    f"<td>{escape(r.check.doc)}</td><td>{escape(r.reason)}</td></tr>")
    if not results:
        rows.append('<tr><td colspan="5">no verdict file given</td></tr>')
    rows.append("</table>")
    return rows


def _figures(streams: Streams) -> list[str]:
    out = []
    for anchor, title, draw in FIGURES:
        out.append(f'<h2 id="{anchor}">{escape(title)}</h2>')
        png = draw(streams)
        if png is None:
            out.append("<p>(not in this recording)</p>")
        else:
            data = base64.b64encode(png).decode("ascii")
            out.append(f'<img alt="{escape(title)}" src="data:image/png;base64,{data}">')
    return out


def _events(streams: Streams) -> list[str]:
    events = streams.events
    out = ['<h2 id="events">Events</h2>',
           f"<p>{len(events)} events published (repeats of one kind and task within 1 s are "
           "throttled by the runtime and counted in health <code>events_suppressed</code>)"
           + (f"; the first {MAX_EVENT_ROWS} shown" if len(events) > MAX_EVENT_ROWS else "")
           + ".</p>"]
    if events:
        out += ["<table>", "<tr><th>t (s)</th><th>severity</th><th>kind</th><th>task</th>"
                "<th>detail</th></tr>"]
        out += [f"<tr><td>{e.t_ns / NS_PER_S:.3f}</td><td>{escape(e.severity)}</td>"
                f"<td>{escape(e.kind)}</td><td>{escape(e.task)}</td>"
                f"<td>{escape(e.detail)}</td></tr>" for e in events[:MAX_EVENT_ROWS]]
        out.append("</table>")
    return out


def _metadata(streams: Streams) -> list[str]:
    meta = streams.recording.metadata
    config = meta.get(META_CONFIG, {})
    out = ['<h2 id="metadata">Recording metadata</h2>', "<h3>Mission</h3>"]
    if config:
        overrides = config.get("overrides", "")
        out += [_table({"mission_path": config.get("mission_path", ""),
                        "overrides": overrides or "(none)"}),
                "<details><summary>mission file</summary>"
                f"<pre>{escape(config.get('mission_toml', ''))}</pre></details>"]
    else:
        out.append("<p>(no mission config recorded)</p>")
    out += ["<h3>Models (SHA-256)</h3>", _table(meta.get(META_MODELS, {})),
            "<h3>Platform fingerprint</h3>", _table(meta.get(META_PLATFORM, {})),
            "<h3>Recorder</h3>", _table(meta.get(META_RECORDER, {})),
            "<h3>Topics</h3>", _table(_topic_counts(streams))]
    return out


def _topic_counts(streams: Streams) -> dict[str, str]:
    counts: dict[str, dict[str, int]] = {}
    for recorded in streams.recording.messages:
        per = counts.setdefault(recorded.topic, {})
        per[recorded.direction] = per.get(recorded.direction, 0) + 1
    return {topic: json.dumps(per) for topic, per in sorted(counts.items())}


def _table(rows: dict[str, str]) -> str:
    if not rows:
        return "<p>(none recorded)</p>"
    return "<table>" + "".join(f'<tr><th>{escape(k)}</th><td class="mono">{escape(str(v))}</td>'
                               "</tr>" for k, v in rows.items()) + "</table>"
