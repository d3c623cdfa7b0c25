"""Board profiles: a TOML overlay of runtime and model settings for one kind of board.

A board file (``deploy/boards/*.toml``) holds ``[board]`` (name, description,
the ``environment`` the runtime expects), ``[runtime]`` keys and
``[models."*"]`` keys (every model) or ``[models.NAME]`` keys (one model). It
becomes ``--set`` overrides, leaf by leaf, applied before the command line's
own ``--set`` and before validation (on a mission file or a bundle alike),
so a board file can hold nothing a mission file could not, and its errors
name the same key paths.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flightai.config.reader import describe
from flightai.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]


@dataclass(frozen=True)
class Board:
    """A board profile: its name, expected environment and overrides for one mission."""

    name: str
    environment: dict[str, str]
    overrides: list[str]

    def environment_warnings(self, environ: Mapping[str, str] | None = None) -> list[str]:
        """One line per environment variable that differs from what the board expects."""
        env = os.environ if environ is None else environ
        return [f"board {self.name}: environment {key}={value!r} expected, found "
                f"{env[key]!r}" if key in env else
                f"board {self.name}: environment {key}={value!r} expected, found it unset"
                for key, value in self.environment.items() if env.get(key) != value]


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
        return data
    except OSError as exc:
        raise ConfigError(str(path), f"a readable {what}", exc.strerror or str(exc)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "valid TOML", str(exc)) from exc


def _toml(value: Any, where: str) -> str:
    """A TOML literal for a parsed TOML value; a date or time (no config key takes one) is refused.

    Raises:
        ConfigError: naming ``where`` and the value.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v, f"{where}[{i}]") for i, v in enumerate(value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v, f'{where}.{k}')}"
                               for k, v in value.items()) + "}"
    raise ConfigError(where, "a string, number, boolean, array or table", describe(value))


def _table(value: Any, where: str) -> dict[str, Any]:
    """``value`` if it is a TOML table, else a :class:`ConfigError` naming ``where``."""
    if not isinstance(value, dict):
        raise ConfigError(where, "a table", describe(value))
    return value


def _leaves(prefix: str, table: Mapping[str, Any], where: str) -> list[str]:
    out: list[str] = []
    for key, value in table.items():
        if isinstance(value, dict):
            out += _leaves(f"{prefix}.{key}", value, where)
        else:
            out.append(f"{prefix}.{key}={_toml(value, f'{where}{prefix}.{key}')}")
    return out


def load_board(path: Path) -> Board:
    """Read a board file and turn it into ``--set`` overrides.

    Raises:
        ConfigError: unreadable, not TOML, or an unknown section (the path names
            the board file). A model name the mission lacks is refused when the
            overrides are applied.
    """
    data = _read_toml(path, "board profile")
    where = f"{path}: "
    unknown = sorted(set(data) - {"board", "runtime", "models"})
    if unknown:
        raise ConfigError(where + unknown[0], "a section of a board profile (board, runtime, "
                          "models)", f"unknown key {unknown[0]!r}")
    head = _table(data.get("board", {}), where + "board")
    environment = head.get("environment", {})
    if not isinstance(environment, dict) or not all(
            isinstance(v, str) for v in environment.values()):
        raise ConfigError(where + "board.environment", "a table of strings", repr(environment))
    overrides = _leaves("runtime", _table(data.get("runtime", {}), where + "runtime"), where)
    models = _table(data.get("models", {}), where + "models")
    for model, table in sorted(models.items(), key=lambda item: item[0] != "*"):
        prefix = f"models.{model}"  # "*" (every model) first
        overrides += _leaves(prefix, _table(table, where + prefix), where)
    return Board(str(head.get("name", path.stem)), dict(environment), overrides)
