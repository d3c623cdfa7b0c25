"""``--set key.path=value`` overrides applied to a mission document before validation.

A path walks tables by key and arrays of tables by index, by ``name`` or
``*`` for every element (``tasks.nav.params.seed=3``,
``models.*.intra_op_threads=1``, ``bus.sensors="tcp://127.0.0.1:6000"``). The
value is read as a TOML value (``3``, ``true``, ``[1, 2]``, ``"text"``); a
value that is not valid TOML is taken as a plain string. The result is then
validated like any mission file, so an override cannot smuggle in what the
file itself could not hold.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from flightai.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A deep copy of ``data`` with each ``path=value`` override applied, in order.

    Raises:
        ConfigError: an override is not ``path=value`` or its path leads nowhere.
    """
    result: dict[str, Any] = copy.deepcopy(dict(data))
    for item in overrides:
        path, sep, text = item.partition("=")
        keys = path.strip().split(".")
        if not sep or not all(keys):
            raise ConfigError(f"--set {item}", "key.path=value", repr(item))
        _assign(result, keys, 0, _value(text.strip()))
    return result


def _assign(node: Any, keys: list[str], depth: int, value: Any) -> None:
    """Set ``keys`` below ``node`` (from ``keys[depth]``), fanning out at each ``*``."""
    if depth == len(keys) - 1:
        if not isinstance(node, dict):
            raise ConfigError(f"--set {'.'.join(keys)}", "a path through tables",
                              "an array or a value")
        node[keys[-1]] = copy.deepcopy(value)
        return
    if keys[depth] == "*" and isinstance(node, list):
        for item in node:
            _assign(item, keys, depth + 1, value)
        return
    _assign(_step(node, keys[depth], ".".join(keys[: depth + 1])), keys, depth + 1, value)


def _step(node: Any, key: str, where: str) -> Any:
    if isinstance(node, dict):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        return child
    if isinstance(node, list):
        if key.isdigit() and int(key) < len(node):
            return node[int(key)]
        named = [t for t in node if isinstance(t, dict) and t.get("name") == key]
        if named:
            return named[0]
        raise ConfigError(f"--set {where}", "an index or the name of an element", repr(key))
    raise ConfigError(f"--set {where}", "a table or an array of tables", repr(node))


def _value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
