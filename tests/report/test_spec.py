"""Verdict files are validated strictly: the first bad key is named with its path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hil.verdict import VerdictFileError, load_verdicts, parse_verdicts
from hil.verdict.spec import TimeRef

ROOT = Path(__file__).resolve().parents[2]
GOOD = {"kind": "always", "topic": "out.command", "array": "thrust.cmd", "element": [2],
        "max": 5000.0}


def one(check: dict[str, Any], **top: Any) -> Any:
    return parse_verdicts({"checks": [{"name": "c", **check}], **top})


def test_the_ltd1_verdict_file_loads() -> None:
    verdicts = load_verdicts(ROOT / "models" / "ltd1" / "verdicts.toml")
    assert verdicts.title == "LTD-1 success criteria"
    names = [c.name for c in verdicts.checks]
    assert {"touchdown_vertical_speed", "touchdown_horizontal_speed", "landing_error",
            "outputs_finite", "no_missed_hard_deadline", "safe_only_on_triggers",
            "executive_rejects_bounded"} <= set(names)
    assert all(c.doc for c in verdicts.checks)


@pytest.mark.parametrize(("check", "message"), [
    ({**GOOD, "maxx": 1}, "checks[0].maxx: expected one of "),
    ({**GOOD, "max": "fast"}, "checks[0].max: expected a number, got 'fast'"),
    ({**GOOD, "max": float("nan")}, "checks[0].max: expected a number, got nan"),
    ({**GOOD, "kind": "sometimes"}, "checks[0].kind: expected one of always, eventually, at, "),
    ({k: v for k, v in GOOD.items() if k != "max"},
     "checks[0].max: expected at least one of min, max, equals, not_equals, got none"),
    ({**GOOD, "field": "health.mode"}, "checks[0].array: expected exactly one of array and "
                                       "field, got both"),
    ({**GOOD, "element": [-1]}, "checks[0].element: expected an index: an array of integers"),
    ({**GOOD, "element": None, "elements": [[0], [1]]},
     "checks[0].reduce: expected one of ['norm', 'max', 'min', 'max_abs', 'sum'] with elements"),
    ({**GOOD, "from": "touchdown"}, "checks[0].from: expected a time in s, or an instant name"),
    ({**GOOD, "to": "end+x"}, "checks[0].to: expected a time in s"),
    ({"kind": "at", "topic": "t", "array": "a", "max": 1}, "checks[0].at: expected an instant "
                                                           "name or a time in s, got nothing"),
    ({"kind": "counter", "field": "health.rejects.stale", "include": ["nav"]},
     "checks[0].include: expected a field with a * to filter, got 'health.rejects.stale'"),
    ({"kind": "counter", "field": "health..x"}, "checks[0].field: expected a dotted path"),
    ({"kind": "counter", "field": "health.rejects.*", "max": -1},
     "checks[0].max: expected an integer >= 0, got -1"),
    ({"kind": "safe_entry", "triggers": ["reboot"]},
     "checks[0].triggers[0]: expected one of tick_timeout, guard_trip, overrun, "),
    ({"kind": "events", "severity": ["FATAL"]}, "checks[0].severity[0]: expected one of INFO"),
    ({"kind": "finite", "array": "x"}, "checks[0].array: expected one of "),
])
def test_a_bad_key_is_named_with_its_path(check: dict[str, Any], message: str) -> None:
    check = {k: v for k, v in check.items() if v is not None}  # None: key left out
    with pytest.raises(VerdictFileError) as info:
        one(check)
    assert str(info.value).startswith(message), str(info.value)


def test_file_level_errors() -> None:
    with pytest.raises(VerdictFileError, match="checks: expected at least one"):
        parse_verdicts({"verdicts": {"title": "x"}})
    with pytest.raises(VerdictFileError, match=r"checks\[1\]\.name: expected a name no other"):
        parse_verdicts({"checks": [{"name": "a", **GOOD}, {"name": "a", **GOOD}]})
    with pytest.raises(VerdictFileError, match=r"verdicts\.titel: expected a known key"):
        parse_verdicts({"verdicts": {"titel": "x"}, "checks": [{"name": "a", **GOOD}]})
    with pytest.raises(VerdictFileError, match=r"instants\.end: expected a name other than"):
        one(GOOD, instants={"end": {"event": "safe_entered"}})
    with pytest.raises(VerdictFileError, match=r"instants\.td\.topic: expected a non-empty string"):
        one(GOOD, instants={"td": {"array": "x"}})


def test_time_references(tmp_path: Path) -> None:
    verdicts = one({**GOOD, "from": "td-1.5", "to": 12}, instants={"td": {"event": "x"}})
    assert verdicts.checks[0].window == (TimeRef("td", -1.5), TimeRef(None, 12.0))
    bad = tmp_path / "bad.toml"
    bad.write_text("[[checks]]\nname = \n")
    with pytest.raises(VerdictFileError, match=str(bad)):
        load_verdicts(bad)
