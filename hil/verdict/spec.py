"""Verdict files: declarative checks over a recording's streams, read from TOML and validated.

Nothing in a verdict file is evaluated as code. Every key is checked against
the kind of check it belongs to; the first bad key is reported with its path,
what was expected and what was found (``checks[3].max: expected a number, got
'fast'``). ``docs/hil.md`` (Verdicts and reports) is the reference.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

KINDS = ("always", "eventually", "at", "finite", "counter", "safe_entry", "events")
REDUCERS = ("norm", "max", "min", "max_abs", "sum")
SEVERITIES = ("INFO", "WARNING", "ERROR")
SAFE_TRIGGERS = ("tick_timeout", "guard_trip", "overrun", "fallback_engaged", "command")
"""What moves a runtime to SAFE: the event kinds behind each ``[safe]`` key, and a command."""
CONFIGURED = "configured"
"""In ``triggers``: the triggers the recorded mission's ``[safe]`` table enables."""
HARD_TASKS = "hard_tasks"
"""As ``include``: the periodic tasks of the recorded mission that may not skip."""
BUILTIN_INSTANTS = ("start", "end")
_TIME_REF = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*)\s*(?:([+-])\s*(\d+(?:\.\d*)?|\.\d+))?$")
_SELECTOR_KEYS = ("topic", "direction", "array", "field", "element", "elements", "reduce")
_CONDITION_KEYS = ("min", "max", "equals", "not_equals")
_COMMON_KEYS = ("name", "kind", "doc")
_WINDOW_KEYS = ("from", "to")
_KIND_KEYS: dict[str, tuple[str, ...]] = {
    "always": (*_SELECTOR_KEYS, *_CONDITION_KEYS, *_WINDOW_KEYS),
    "eventually": (*_SELECTOR_KEYS, *_CONDITION_KEYS, *_WINDOW_KEYS),
    "at": (*_SELECTOR_KEYS, *_CONDITION_KEYS, "at"),
    "finite": ("topic", "direction", *_WINDOW_KEYS),
    "counter": ("topic", "field", "include", "exclude", "sum", "max", *_WINDOW_KEYS),
    "safe_entry": ("triggers", "within_s", *_WINDOW_KEYS),
    "events": ("severity", "kinds", "except", "max", *_WINDOW_KEYS),
}


class VerdictFileError(ValueError):
    """A verdict file key is missing, unknown, mistyped or out of range.

    Args:
        path: the key path, e.g. ``checks[2].max``.
        expected: what was expected there, in words.
        found: what was found (already formatted), or None to omit.
    """

    def __init__(self, path: str, expected: str, found: str | None = None) -> None:
        self.path = path
        self.expected = expected
        self.found = found
        super().__init__(f"{path}: expected {expected}"
                         + ("" if found is None else f", got {found}"))


@dataclass(frozen=True)
class TimeRef:
    """A mission time: an instant's time plus ``offset_s``, or ``offset_s`` from t = 0.

    Attributes:
        instant: ``start``, ``end``, a name of the file's ``[instants]``, or None.
        offset_s: seconds added (the absolute time when ``instant`` is None).
    """

    instant: str | None
    offset_s: float = 0.0

    def describe(self) -> str:
        """As written in a verdict file."""
        if self.instant is None:
            return f"{self.offset_s:g} s"
        return self.instant + (f"{self.offset_s:+g} s" if self.offset_s else "")


START = TimeRef("start")
END = TimeRef("end")


@dataclass(frozen=True)
class Selector:
    """Which values of which messages a check reads.

    Attributes:
        topic: the topic (exact), or for ``finite`` a prefix.
        direction: only messages recorded in this direction (None: any).
        array: an array of the message, by name (or None).
        field: a header field path (``health.tasks.*.overruns``; ``*`` matches every key).
        elements: the array elements read (indices; empty: the whole array).
        reduce: how several elements make one value (None: one element).
    """

    topic: str
    direction: str | None = None
    array: str | None = None
    field: tuple[str, ...] = ()
    elements: tuple[tuple[int, ...], ...] = ()
    reduce: str | None = None


@dataclass(frozen=True)
class Condition:
    """What a value must satisfy: every bound given (inclusive; NaN satisfies none)."""

    min: float | None = None
    max: float | None = None
    equals: float | str | None = None
    not_equals: float | str | None = None

    def describe(self) -> str:
        """The bounds in words, e.g. ``<= 2``."""
        parts = []
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        if self.equals is not None:
            parts.append(f"== {self.equals!r}")
        if self.not_equals is not None:
            parts.append(f"!= {self.not_equals!r}")
        return " and ".join(parts)


@dataclass(frozen=True)
class Instant:
    """A named moment: the first event of a kind, or the first message (meeting a condition).

    Attributes:
        name: the name checks refer to.
        event: a runtime event kind (``safe_entered``), or None.
        selector: the stream (when not an event).
        condition: the first sample meeting it (None: the first message).
    """

    name: str
    event: str | None = None
    selector: Selector | None = None
    condition: Condition | None = None


@dataclass(frozen=True)
class Check:
    """One check; which fields matter depends on ``kind`` (docs/hil.md).

    Attributes:
        name: unique in the file; the JUnit test case name.
        kind: one of :data:`KINDS`.
        doc: what it checks, in words (the report shows it).
        selector: the stream (``always``, ``eventually``, ``at``, ``finite``, ``counter``).
        condition: the bounds (``always``, ``eventually``, ``at``).
        window: from and to (inclusive), mission time.
        at: the moment of an ``at`` check.
        include: ``counter`` wildcard keys kept (empty: all), or ``(HARD_TASKS,)``.
        exclude: ``counter`` wildcard keys dropped.
        total: ``counter``: bound the sum over the wildcard's keys, not each key.
        limit: ``counter`` and ``events``: the largest count allowed.
        triggers: ``safe_entry``: the allowed causes (:data:`SAFE_TRIGGERS`, ``configured``).
        within_s: ``safe_entry``: how long before the entry its trigger event may be.
        severities: ``events``: the severities counted (empty: all).
        kinds: ``events``: the kinds counted (empty: all).
        excepted: ``events``: kinds never counted.
    """

    name: str
    kind: str
    doc: str = ""
    selector: Selector | None = None
    condition: Condition | None = None
    window: tuple[TimeRef, TimeRef] = (START, END)
    at: TimeRef | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    total: bool = False
    limit: int = 0
    triggers: tuple[str, ...] = ()
    within_s: float = 5.0
    severities: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    excepted: tuple[str, ...] = ()


@dataclass(frozen=True)
class VerdictSet:
    """A verdict file: a title, named instants and the checks, in file order."""

    title: str
    instants: Mapping[str, Instant]
    checks: tuple[Check, ...]
    source: str = ""


def load_verdicts(path: str | Path) -> VerdictSet:
    """Read and validate a verdict file.

    Raises:
        VerdictFileError: the file is not valid TOML, or a key is wrong (named by its path).
        OSError: the file cannot be read.
    """
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise VerdictFileError(str(path), "a TOML document", str(exc)) from None
    return parse_verdicts(data, str(path))


def parse_verdicts(data: Mapping[str, Any], source: str = "") -> VerdictSet:
    """Validate a verdict document already parsed from TOML.

    Raises:
        VerdictFileError: a key is missing, unknown, mistyped or out of range.
    """
    top = _Table(data, "")
    head = top.table("verdicts")
    title = head.string("title", required=False) or (Path(source).stem if source else "verdicts")
    head.done()
    instants: dict[str, Instant] = {}
    for name, raw in top.table("instants").items():
        if name in BUILTIN_INSTANTS:
            raise VerdictFileError(f"instants.{name}", "a name other than start and end",
                                   repr(name))
        instants[name] = _instant(name, _Table(raw, f"instants.{name}"))
    raw_checks = top.array_of_tables("checks")
    top.done()
    if not raw_checks:
        raise VerdictFileError("checks", "at least one [[checks]] table", "none")
    checks: list[Check] = []
    for i, raw in enumerate(raw_checks):
        check = _check(_Table(raw, f"checks[{i}]"), instants)
        if any(c.name == check.name for c in checks):
            raise VerdictFileError(f"checks[{i}].name", "a name no other check has",
                                   repr(check.name))
        checks.append(check)
    return VerdictSet(title, instants, tuple(checks), source)


def _instant(name: str, table: _Table) -> Instant:
    event = table.string("event", required=False)
    if event is not None:
        table.done()
        return Instant(name, event=event)
    selector = _selector(table, required=True)
    condition = _condition(table, required=False)
    table.done()
    return Instant(name, selector=selector, condition=condition)


def _check(table: _Table, instants: Mapping[str, Instant]) -> Check:
    name = table.string("name")
    kind = table.choice("kind", KINDS)
    table.allow(*_COMMON_KEYS, *_KIND_KEYS[kind])
    common: dict[str, Any] = {"name": name, "kind": kind,
                              "doc": table.string("doc", required=False) or ""}
    if "from" in _KIND_KEYS[kind]:
        common["window"] = (table.time_ref("from", instants) or START,
                            table.time_ref("to", instants) or END)
    if kind in ("always", "eventually", "at"):
        common["selector"] = _selector(table, required=True)
        common["condition"] = _condition(table, required=True)
        if kind == "at":
            at = table.time_ref("at", instants)
            if at is None:
                raise VerdictFileError(table.where("at"), "an instant name or a time in s",
                                       "nothing")
            common["at"] = at
    elif kind == "finite":
        common["selector"] = Selector(table.string("topic", required=False) or "out.",
                                      table.string("direction", required=False))
    elif kind == "counter":
        field = _field(table, required=True)
        for key in ("include", "exclude"):
            if table.data.get(key) is not None and "*" not in field:
                raise VerdictFileError(table.where(key), "a field with a * to filter",
                                       repr(".".join(field)))
        common.update(
            selector=Selector(table.string("topic", required=False) or "health", field=field),
            include=table.names("include", special=HARD_TASKS),
            exclude=table.names("exclude"), total=table.boolean("sum"),
            limit=table.count("max"))
    elif kind == "safe_entry":
        triggers = table.names("triggers", choices=(*SAFE_TRIGGERS, CONFIGURED))
        common.update(triggers=triggers or (CONFIGURED,),
                      within_s=table.number("within_s", required=False, minimum=0.0) or 5.0)
    else:  # events
        common.update(severities=table.names("severity", choices=SEVERITIES),
                      kinds=table.names("kinds"), excepted=table.names("except"),
                      limit=table.count("max"))
    table.done()
    return Check(**common)


def _selector(table: _Table, required: bool) -> Selector:
    topic = table.string("topic")
    array = table.string("array", required=False)
    field = _field(table, required=False)
    if (array is None) == (not field):
        raise VerdictFileError(table.where("array"), "exactly one of array and field",
                               "both" if array is not None else "neither")
    elements = table.indices()
    reduce = table.choice("reduce", REDUCERS, required=False)
    if field and (elements or reduce):
        raise VerdictFileError(table.where("element" if elements else "reduce"),
                               "no element, elements or reduce with field",
                               repr(elements or reduce))
    if len(elements) > 1 and reduce is None:
        raise VerdictFileError(table.where("reduce"), f"one of {list(REDUCERS)} with elements",
                               "nothing")
    return Selector(topic, table.string("direction", required=False), array, field,
                    elements, reduce)


def _field(table: _Table, required: bool) -> tuple[str, ...]:
    text = table.string("field", required=required)
    if text is None:
        return ()
    parts = tuple(text.split("."))
    if not all(parts):
        raise VerdictFileError(table.where("field"), "a dotted path of keys, e.g. "
                               "health.tasks.*.overruns", repr(text))
    return parts


def _condition(table: _Table, required: bool) -> Condition | None:
    values = {key: table.value(key) for key in _CONDITION_KEYS}
    for key in ("min", "max"):
        if values[key] is not None and not _is_number(values[key]):
            raise VerdictFileError(table.where(key), "a number", repr(values[key]))
    for key in ("equals", "not_equals"):
        if values[key] is not None and not (_is_number(values[key])
                                            or isinstance(values[key], str)):
            raise VerdictFileError(table.where(key), "a number or a string", repr(values[key]))
    if all(v is None for v in values.values()):
        if required:
            raise VerdictFileError(table.where("max"),
                                   "at least one of min, max, equals, not_equals", "none")
        return None
    return Condition(**{k: (float(v) if _is_number(v) else v) for k, v in values.items()})


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


class _Table:
    """One TOML table being validated: typed getters, then :meth:`done` refuses leftovers."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, Mapping):
            raise VerdictFileError(path or "(document)", "a table", repr(data))
        self.data = data
        self.path = path
        self.seen: set[str] = set()
        self.allowed: set[str] | None = None

    def where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def allow(self, *keys: str) -> None:
        self.allowed = set(keys)
        for key in self.data:
            if key not in self.allowed:
                raise VerdictFileError(self.where(key), "one of " + ", ".join(sorted(keys)),
                                       "an unknown key")

    def items(self) -> list[tuple[str, Any]]:
        self.seen.update(self.data)
        return list(self.data.items())

    def value(self, key: str) -> Any:
        self.seen.add(key)
        return self.data.get(key)

    def table(self, key: str) -> _Table:
        value = self.value(key)
        return _Table({} if value is None else value, self.where(key))

    def array_of_tables(self, key: str) -> list[Any]:
        value = self.value(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise VerdictFileError(self.where(key), "an array of tables ([[checks]])",
                                   repr(value))
        return value

    def string(self, key: str, required: bool = True) -> Any:
        value = self.value(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value:
            raise VerdictFileError(self.where(key), "a non-empty string",
                                   "nothing" if value is None else repr(value))
        return value

    def choice(self, key: str, choices: tuple[str, ...], required: bool = True) -> Any:
        value = self.string(key, required)
        if value is not None and value not in choices:
            raise VerdictFileError(self.where(key), "one of " + ", ".join(choices), repr(value))
        return value

    def boolean(self, key: str) -> bool:
        value = self.value(key)
        if value is not None and type(value) is not bool:
            raise VerdictFileError(self.where(key), "true or false", repr(value))
        return bool(value)

    def count(self, key: str) -> int:
        value = self.value(key)
        if value is None:
            return 0
        if type(value) is not int or value < 0:
            raise VerdictFileError(self.where(key), "an integer >= 0", repr(value))
        return value

    def number(self, key: str, required: bool = True, minimum: float | None = None) -> Any:
        value = self.value(key)
        if value is None and not required:
            return None
        if not _is_number(value) or (minimum is not None and value < minimum):
            bound = "" if minimum is None else f" >= {minimum:g}"
            raise VerdictFileError(self.where(key), f"a number{bound}", repr(value))
        return float(value)

    def names(self, key: str, choices: tuple[str, ...] = (), special: str = "") -> tuple[str, ...]:
        value = self.value(key)
        if value is None:
            return ()
        if special and value == special:
            return (special,)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            expected = "an array of strings" + (f" or {special!r}" if special else "")
            raise VerdictFileError(self.where(key), expected, repr(value))
        for i, item in enumerate(value):
            if choices and item not in choices:
                raise VerdictFileError(f"{self.where(key)}[{i}]", "one of " + ", ".join(choices),
                                       repr(item))
        return tuple(value)

    def indices(self) -> tuple[tuple[int, ...], ...]:
        one, many = self.value("element"), self.value("elements")
        if one is not None and many is not None:
            raise VerdictFileError(self.where("elements"), "element or elements, not both",
                                   "both")
        items = [one] if one is not None else many
        if items is None:
            return ()
        if not isinstance(items, list) or not items:
            raise VerdictFileError(self.where("elements"), "an array of indices, e.g. [[0], [1]]",
                                   repr(items))
        for i, index in enumerate(items):
            if not isinstance(index, list) or not all(type(n) is int and n >= 0 for n in index):
                key = "element" if one is not None else f"elements[{i}]"
                raise VerdictFileError(self.where(key), "an index: an array of integers >= 0, "
                                       "e.g. [0, 2]", repr(index))
        return tuple(tuple(index) for index in items)

    def time_ref(self, key: str, instants: Mapping[str, Instant]) -> TimeRef | None:
        value = self.value(key)
        if value is None:
            return None
        if _is_number(value):
            return TimeRef(None, float(value))
        match = _TIME_REF.match(value) if isinstance(value, str) else None
        expected = ("a time in s, or an instant name with an optional offset in s "
                    "(start, end, " + ", ".join(sorted(instants)) + "; e.g. 'touchdown-1.5')")
        if match is None or (match[1] not in instants and match[1] not in BUILTIN_INSTANTS):
            raise VerdictFileError(self.where(key), expected, repr(value))
        offset = float(match[3]) * (-1 if match[2] == "-" else 1) if match[3] else 0.0
        return TimeRef(match[1], offset)

    def done(self) -> None:
        for key in self.data:
            if key not in self.seen:
                raise VerdictFileError(self.where(key), "a known key", "an unknown key")
