"""Helpers shared by the LTD-1 model build scripts (build time only, never flown).

The onboard modules are imported by file path, as the runtime loads them; the
onnxruntime session uses the options the mission configs pin; the manifest
``MODELS.sha256`` (``sha256sum`` format) is kept in step with each build.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import onnxruntime as ort

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "MODELS.sha256"


def load_onboard(name: str) -> ModuleType:
    """The onboard module ``onboard/<name>.py``, imported by file path."""
    path = HERE / "onboard" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"ltd1_onboard_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ort_session(data: bytes) -> ort.InferenceSession:
    """A CPU session as the runtime builds it: one thread each, all graph optimisations."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.use_deterministic_compute = True
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(data, sess_options=so, providers=["CPUExecutionProvider"])


def update_manifest(file_name: str, sha256: str) -> None:
    """Set ``file_name``'s line in MODELS.sha256, keeping the other models' lines."""
    entries = {}
    if MANIFEST.exists():
        for line in MANIFEST.read_text().splitlines():
            digest, name = line.split()
            entries[name] = digest
    entries[file_name] = sha256
    MANIFEST.write_text("".join(f"{entries[n]}  {n}\n" for n in sorted(entries)))
