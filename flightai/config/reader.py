"""Typed, strict access to one TOML table, naming the key path in every error."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, TypeVar

from flightai.errors import ConfigError

E = TypeVar("E", bound=enum.Enum)
_MISSING: Any = object()


def describe(value: object) -> str:
    """Render a found value for an error message: its repr and TOML type."""
    kind = {bool: "boolean", int: "integer", float: "float", str: "string",
            list: "array", dict: "table"}.get(type(value), type(value).__name__)
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({kind})"


class Table:
    """One TOML table being read; call :meth:`finish` to refuse unknown keys.

    Args:
        data: the parsed table.
        path: its key path (``""`` for the document root).
    """

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(path or "<document>", "a table", describe(data))
        self._data: Mapping[str, Any] = data
        self._seen: set[str] = set()
        self.path = path

    def key_path(self, key: str) -> str:
        """The full path of ``key`` inside this table."""
        return f"{self.path}.{key}" if self.path else key

    def names(self) -> list[str]:
        """The keys present, in file order (for tables whose keys are names)."""
        return list(self._data)

    def has(self, key: str) -> bool:
        """Whether the key is present."""
        return key in self._data

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        """The value as parsed, or ``default``; missing and no default is an error."""
        self._seen.add(key)
        if key in self._data:
            return self._data[key]
        if default is _MISSING:
            raise ConfigError(self.key_path(key), "a value (this key is required)", "nothing")
        return default

    def table(self, key: str, required: bool = False) -> Table:
        """A sub-table (an empty one when absent and not required)."""
        value = self.raw(key, _MISSING if required else {})
        return Table(value, self.key_path(key))

    def tables(self, key: str, required: bool = False) -> list[Table]:
        """An array of tables (``[[key]]``)."""
        value = self.raw(key, _MISSING if required else [])
        if not isinstance(value, list):
            raise ConfigError(self.key_path(key), "an array of tables", describe(value))
        return [Table(item, f"{self.key_path(key)}[{i}]") for i, item in enumerate(value)]

    def string(self, key: str, default: Any = _MISSING) -> Any:
        """A string value."""
        value = self.raw(key, default)
        if value is not default and not isinstance(value, str):
            raise ConfigError(self.key_path(key), "a string", describe(value))
        return value

    def boolean(self, key: str, default: Any = _MISSING) -> Any:
        """A boolean value."""
        value = self.raw(key, default)
        if value is not default and not isinstance(value, bool):
            raise ConfigError(self.key_path(key), "true or false", describe(value))
        return value

    def integer(self, key: str, default: Any = _MISSING, minimum: int | None = None,
                maximum: int | None = None) -> Any:
        """An integer value within ``[minimum, maximum]``."""
        value = self.raw(key, default)
        if value is default:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(self.key_path(key), "an integer", describe(value))
        if minimum is not None and value < minimum:
            raise ConfigError(self.key_path(key), f"an integer >= {minimum}", str(value))
        if maximum is not None and value > maximum:
            raise ConfigError(self.key_path(key), f"an integer <= {maximum}", str(value))
        return value

    def number(self, key: str, default: Any = _MISSING) -> Any:
        """A finite number (integer or float), returned as float."""
        value = self.raw(key, default)
        if value is default:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(self.key_path(key), "a number", describe(value))
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(self.key_path(key), "a finite number", describe(value))
        return float(value)

    def choice(self, key: str, kind: type[E], default: Any = _MISSING) -> Any:
        """One of an enum's values, given by its string."""
        value = self.raw(key, default)
        if value is default:
            return value
        allowed = [m.value for m in kind]
        if not isinstance(value, str) or value not in allowed:
            expected = "one of " + ", ".join(repr(a) for a in allowed)
            raise ConfigError(self.key_path(key), expected, describe(value))
        return kind(value)

    def strings(self, key: str, default: Any = _MISSING, non_empty: bool = False) -> Any:
        """An array of strings, returned as a tuple."""
        value = self.raw(key, default)
        if value is default:
            return value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(self.key_path(key), "an array of strings", describe(value))
        if non_empty and not value:
            raise ConfigError(self.key_path(key), "a non-empty array of strings", "[]")
        return tuple(value)

    def shape(self, key: str) -> tuple[int, ...]:
        """A static array shape: an array of positive integers."""
        value = self.raw(key)
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
        ):
            raise ConfigError(self.key_path(key), "an array of positive integers", describe(value))
        return tuple(value)

    def finish(self) -> None:
        """Refuse any key that was not read."""
        for key in self._data:
            if key not in self._seen:
                known = ", ".join(sorted(self._seen)) or "none"
                where = self.path or "the document"
                raise ConfigError(self.key_path(key), f"a key of {where} ({known})",
                                  f"unknown key {key!r}")
