"""The platform fingerprint stored in every recording.

Two runs can be compared bit for bit only on the same numerical platform: the
same CPU features (which kernels onnxruntime and numpy pick), the same
libraries and the same execution providers. :data:`BIT_EXACT_FIELDS` are the
fields that must match for that; the other fields describe the machine for a
person reading the recording.
"""

from __future__ import annotations

import hashlib
import platform
import sys
from importlib import metadata
from pathlib import Path

#: Fields that must be equal for two runs to be expected bit-identical.
BIT_EXACT_FIELDS = ("cpu_arch", "cpu_model", "cpu_flags_sha256", "python", "numpy",
                    "onnxruntime", "onnxruntime_providers", "flightai")


def _cpu_info() -> tuple[str, str]:
    """CPU model name and its space-separated sorted flags ('' where /proc/cpuinfo is absent)."""
    model, flags = "", ""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model") and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = " ".join(sorted(value.split()))
    return model or platform.processor(), flags


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return ""


def fingerprint() -> dict[str, str]:
    """The fingerprint of this machine, as MCAP metadata (every value a string)."""
    model, flags = _cpu_info()
    try:
        import onnxruntime

        providers = ",".join(onnxruntime.get_available_providers())
    except ImportError:  # pragma: no cover - a dependency of flightai
        providers = ""
    return {
        "cpu_arch": platform.machine(),
        "cpu_model": model,
        "cpu_flags": flags,
        "cpu_flags_sha256": hashlib.sha256(flags.encode()).hexdigest(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": sys.implementation.name,
        "numpy": _version("numpy"),
        "onnxruntime": _version("onnxruntime"),
        "onnxruntime_providers": providers,
        "flightai": _version("flightai"),
    }


def bit_exact(a: dict[str, str], b: dict[str, str]) -> bool:
    """True when two fingerprints agree on every :data:`BIT_EXACT_FIELDS` field."""
    return all(a.get(key) == b.get(key) for key in BIT_EXACT_FIELDS)
