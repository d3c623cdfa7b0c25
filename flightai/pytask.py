"""Python callables as tasks and sources, named ``module.path:name`` or ``file.py:name``.

A ``file.py`` path resolves from the mission file's folder, so a mission can
ship its own navigation filter or fallback controller beside its TOML.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flightai.errors import TaskError
from flightai.sched.task import Arrays


def load_object(target: str, base_dir: Path) -> Any:
    """Import the object a ``module:name`` or ``file.py:name`` target names.

    Raises:
        TaskError: the module cannot be imported or has no such name.
    """
    module_part, _, attr = target.rpartition(":")
    try:
        if module_part.endswith(".py"):
            path = (base_dir / module_part).resolve()
            key = "flightai_user_" + hashlib.sha256(str(path).encode()).hexdigest()[:16]
            module = sys.modules.get(key)
            if module is None:
                spec = importlib.util.spec_from_file_location(key, path)
                if spec is None or spec.loader is None:
                    raise TaskError(f"{target}: cannot load {path}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[key] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[key]
                    raise
        else:
            module = importlib.import_module(module_part)
    except TaskError:
        raise
    except Exception as exc:
        raise TaskError(f"{target}: import failed: {type(exc).__name__}: {exc}") from exc
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise TaskError(f"{target}: {module_part} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


class FunctionTask:
    """A stateless function ``f(inputs) -> outputs`` as a task."""

    def __init__(self, target: str, function: Callable[[Arrays], Arrays]) -> None:
        self._target = target
        self._function = function

    def run(self, inputs: Arrays) -> Arrays:
        """Call the function."""
        return self._function(inputs)

    def warmup(self, inputs: Arrays) -> None:
        """Call it once on zero inputs: a function has no state to disturb."""
        self._function(inputs)

    def describe(self) -> dict[str, str]:
        """Kind and target."""
        return {"kind": "function", "target": self._target}


class FactoryTask:
    """An object built by ``factory(**params)`` whose ``run`` method is the job body.

    Its ``warmup(inputs)`` is called if it has one; otherwise nothing is run
    before READY, since a stateful object must only see real inputs.
    """

    def __init__(self, target: str, instance: Any) -> None:
        if not callable(getattr(instance, "run", None)):
            raise TaskError(f"{target}: the factory returned {type(instance).__name__}, "
                            "which has no run(inputs) method")
        self._target = target
        self._instance = instance

    def run(self, inputs: Arrays) -> Arrays:
        """Call the instance's ``run``."""
        result: Arrays = self._instance.run(inputs)
        return result

    def warmup(self, inputs: Arrays) -> None:
        """Delegate to the instance's ``warmup`` when it has one."""
        warmup = getattr(self._instance, "warmup", None)
        if callable(warmup):
            warmup(inputs)

    def describe(self) -> dict[str, str]:
        """Kind and target, and the facts the instance's own ``describe()`` gives, if any."""
        describe = getattr(self._instance, "describe", None)
        facts = describe() if callable(describe) else {}
        return {**facts, "kind": "factory", "target": self._target}


def build_from_factory(target: str, base_dir: Path, params: Mapping[str, Any]) -> Any:
    """Call the named factory with ``params`` as keyword arguments.

    A factory that declares a ``mission_dir`` parameter also gets the mission
    file's folder, so it can resolve its own data files (maps, tables) from
    there rather than from the working directory.

    Raises:
        TaskError: not callable, or the call raised.
    """
    factory = load_object(target, base_dir)
    if not callable(factory):
        raise TaskError(f"{target}: not callable")
    kwargs = dict(params)
    try:
        if "mission_dir" in inspect.signature(factory).parameters:
            kwargs.setdefault("mission_dir", base_dir)
    except (TypeError, ValueError):  # a builtin without a signature: no mission_dir
        pass
    try:
        return factory(**kwargs)
    except Exception as exc:
        raise TaskError(f"{target}: factory raised {type(exc).__name__}: {exc}") from exc
