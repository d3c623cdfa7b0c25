"""Import an LTD-1 onboard module by file path, as the runtime loads it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ONBOARD = Path(__file__).resolve().parents[2] / "models" / "ltd1" / "onboard"


def load_onboard(name: str) -> ModuleType:
    """A fresh module object for ``models/ltd1/onboard/<name>.py``."""
    spec = importlib.util.spec_from_file_location(f"ltd1_onboard_{name}_test",
                                                  ONBOARD / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
