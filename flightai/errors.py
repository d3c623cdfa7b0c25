"""The exceptions flightai raises at load time and at API edges.

Inside the frame loop faults are values (counters, events, reject reasons);
nothing below escapes a frame. The tree::

    FlightaiError
    ├── ConfigError            a mission file that is malformed or inconsistent
    │   └── ScheduleError      a config whose tasks cannot be scheduled
    ├── ModelError             a model that cannot be admitted
    │   ├── ModelHashError     file bytes differ from the configured SHA-256
    │   ├── ModelSignatureError  declared I/O differs from the model's
    │   ├── ProviderError      a required execution provider is not running it
    │   └── ModelLoadError     onnxruntime refused the (verified) bytes
    ├── TaskError              a Python task that cannot be imported or built
    ├── ProfileError           a timing profile that cannot be read or does not apply
    ├── ServiceError           a process setting (affinity, priority, memory lock) refused
    ├── BusError               a bus socket or its security cannot be set up
    └── BundleError            a mission bundle refused, or an install that failed
"""

from __future__ import annotations


class FlightaiError(Exception):
    """Base of every error flightai raises on purpose."""


class ConfigError(FlightaiError):
    """A mission config key is missing, unknown, mistyped or out of range.

    Args:
        path: the key path, e.g. ``tasks[2].period_ms``.
        expected: what was expected there, in words.
        found: what was found (already formatted), or ``None`` to omit.
    """

    def __init__(self, path: str, expected: str, found: str | None = None) -> None:
        self.path = path
        self.expected = expected
        self.found = found
        message = f"{path}: expected {expected}"
        if found is not None:
            message += f", got {found}"
        super().__init__(message)


class ScheduleError(ConfigError):
    """The tasks of a config cannot be scheduled; names the task and the reason."""


class ModelError(FlightaiError):
    """A model cannot be admitted into the runtime."""


class ModelHashError(ModelError):
    """The model file's SHA-256 is not the configured one (checked before onnxruntime)."""

    def __init__(self, model: str, path: str, expected: str, actual: str) -> None:
        self.model = model
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"model {model!r} ({path}): SHA-256 mismatch: config says {expected}, "
            f"file has {actual}; refused before loading"
        )


class ModelSignatureError(ModelError):
    """A model's inputs or outputs differ from those declared in the config."""


class ProviderError(ModelError):
    """A configured execution provider is unavailable and fallback is forbidden."""


class ModelLoadError(ModelError):
    """onnxruntime refused the verified model bytes (translated from its exceptions)."""


class TaskError(FlightaiError):
    """A Python task cannot be imported, built or called as configured."""


class ProfileError(FlightaiError):
    """A timing profile is unreadable, or was made on another board, build or model."""


class ServiceError(FlightaiError):
    """The OS refused a process setting the config asks for (affinity, priority, lock)."""


class BusError(FlightaiError):
    """A bus socket or its security could not be set up (translated from pyzmq)."""


class BundleError(FlightaiError):
    """A mission bundle was refused (signature, hashes, paths, rollback) or failed to install.

    Args:
        reason: a short code from :class:`flightai.bundle.refusal.Refusal`.
        detail: what was found, naming the file or key involved.
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"bundle refused ({reason}): {detail}")
