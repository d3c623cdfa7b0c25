"""The deployment keys of a mission: process settings, timing admission, provider options.

They live in their own module because they describe the board a mission is
deployed on rather than the mission itself (see ``deploy/boards/``).
"""

from __future__ import annotations

from pathlib import Path

from flightai.config.reader import Table, describe
from flightai.config.schema import AdmissionConfig, IfDenied, ProcessConfig
from flightai.errors import ConfigError

TENSORRT = "TensorrtExecutionProvider"
#: Provider options that name a path on the board; a relative one resolves from the mission.
PATH_OPTIONS = ("trt_engine_cache_path", "trt_timing_cache_path")


def read_process(t: Table) -> ProcessConfig:
    """``[runtime.process]``: CPU affinity, real-time priority, memory locking, heap."""
    cpus = t.raw("cpu_affinity", [])
    if not isinstance(cpus, list) or not all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in cpus):
        raise ConfigError(t.key_path("cpu_affinity"), "an array of CPU numbers (integers >= 0)",
                          describe(cpus))
    if len(set(cpus)) != len(cpus):
        raise ConfigError(t.key_path("cpu_affinity"), "each CPU once", describe(cpus))
    config = ProcessConfig(
        cpu_affinity=tuple(cpus),
        realtime_priority=t.integer("realtime_priority", 0, minimum=0, maximum=99),
        lock_memory=t.boolean("lock_memory", False),
        keep_heap=t.boolean("keep_heap", False),
        if_denied=t.choice("if_denied", IfDenied, IfDenied.REFUSE),
    )
    t.finish()
    return config


def read_admission(t: Table) -> AdmissionConfig:
    """``[runtime.admission]``: the margin above a profiled p99.9 that a budget must leave."""
    config = AdmissionConfig(margin_pct=t.integer("margin_pct", AdmissionConfig.margin_pct,
                                                  minimum=0, maximum=1000),
                             margin_us=t.integer("margin_us", AdmissionConfig.margin_us,
                                                 minimum=0))
    t.finish()
    return config


def read_provider_options(t: Table, providers: tuple[str, ...],
                          base_dir: Path) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    """``[models.provider_options.<Provider>]``: options handed to one execution provider.

    Values are TOML strings, integers, floats or booleans, passed to onnxruntime
    as strings (``str(value)``) and recorded in the session report.
    """
    result = []
    for provider in t.names():
        if provider not in providers:
            raise ConfigError(t.key_path(provider), "a provider listed in providers ("
                              + ", ".join(providers) + ")", repr(provider))
        options = t.table(provider)
        pairs = []
        for key in options.names():
            value = options.raw(key)
            if isinstance(value, (dict, list)):
                raise ConfigError(options.key_path(key), "a string, number or boolean",
                                  describe(value))
            text = str(value)
            if key in PATH_OPTIONS and not Path(text).is_absolute():
                text = str(base_dir / text)
            pairs.append((key, text))
        options.finish()
        result.append((provider, tuple(pairs)))
    t.finish()
    return tuple(result)
