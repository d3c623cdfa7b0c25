"""The platform fingerprint: what decides results and timing on this machine.

Two runs can be compared bit for bit only on the same numerical platform: the
same CPU features (which kernels onnxruntime and numpy pick), the same
libraries and the same execution providers (:data:`BIT_EXACT_FIELDS`). A
timing profile holds only on the board it was measured on
(:data:`TIMING_FIELDS`). The other fields describe the machine for a person.
Recordings (``hil``) and profiles (:mod:`flightai.profile`) both store it.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

#: Fields that must be equal for two runs to be expected bit-identical.
BIT_EXACT_FIELDS = ("cpu_arch", "cpu_model", "cpu_flags_sha256", "python", "numpy",
                    "onnxruntime", "onnxruntime_providers", "flightai")
#: Fields that must be equal for a timing profile to hold on this machine.
TIMING_FIELDS = ("cpu_arch", "cpu_model", "cpu_flags_sha256", "cpu_count", "onnxruntime",
                 "onnxruntime_providers")


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


def _onnxruntime() -> tuple[str, str]:
    """The installed onnxruntime distribution (CPU or GPU build) and its providers."""
    import onnxruntime

    version = next((v for v in (_version(d) for d in ("onnxruntime", "onnxruntime-gpu")) if v),
                   onnxruntime.__version__)
    return version, ",".join(onnxruntime.get_available_providers())


def fingerprint() -> dict[str, str]:
    """The fingerprint of this machine (every value a string)."""
    model, flags = _cpu_info()
    ort_version, providers = _onnxruntime()
    return {
        "cpu_arch": platform.machine(),
        "cpu_model": model,
        "cpu_flags": flags,
        "cpu_flags_sha256": hashlib.sha256(flags.encode()).hexdigest(),
        "cpu_count": str(os.cpu_count() or 0),
        "os": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": sys.implementation.name,
        "numpy": _version("numpy"),
        "onnxruntime": ort_version,
        "onnxruntime_providers": providers,
        "flightai": _version("flightai"),
    }


def differences(a: Mapping[str, str], b: Mapping[str, str],
                fields: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """The ``(field, a value, b value)`` of each of ``fields`` on which ``a`` and ``b`` differ."""
    return [(key, a.get(key, ""), b.get(key, "")) for key in fields if a.get(key) != b.get(key)]


def bit_exact(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    """True when two fingerprints agree on every :data:`BIT_EXACT_FIELDS` field."""
    return not differences(a, b, BIT_EXACT_FIELDS)
