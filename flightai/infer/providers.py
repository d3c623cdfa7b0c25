"""Execution-provider options and the TensorRT engine-cache rule.

TensorRT compiles an engine for each graph when a session is created: seconds
to minutes, and a result that depends on the board. flightai never lets that
happen in flight: a TensorRT session must read its engines from a cache that
``flightai profile --build-engines`` filled on the board beforehand, and is
refused while that cache is empty.
"""

from __future__ import annotations

from pathlib import Path

from flightai.config.deployment import TENSORRT
from flightai.config.schema import ModelConfig
from flightai.errors import ProviderError

_TRUE = ("1", "true", "True")


def with_options(config: ModelConfig, chosen: list[str]) -> list[tuple[str, dict[str, str]]]:
    """The chosen providers paired with their pinned options, for ``InferenceSession``."""
    return [(provider, config.options_for(provider)) for provider in chosen]


def engine_cache(config: ModelConfig) -> Path:
    """The TensorRT engine cache folder of ``config``.

    Raises:
        ProviderError: the engine cache is not enabled, or has no path.
    """
    options = config.options_for(TENSORRT)
    where = f"models.{config.name}.provider_options.{TENSORRT}"
    if options.get("trt_engine_cache_enable") not in _TRUE:
        raise ProviderError(f"model {config.name!r}: {where}.trt_engine_cache_enable must be "
                            "true: TensorRT engines are built on the board beforehand "
                            "(flightai profile --build-engines), never in flight")
    path = options.get("trt_engine_cache_path")
    if not path:
        raise ProviderError(f"model {config.name!r}: {where}.trt_engine_cache_path is needed "
                            "(an absolute folder on the board)")
    return Path(path)


def require_engines(config: ModelConfig, chosen: list[str]) -> None:
    """Refuse a TensorRT session whose engines are not already built and cached.

    Raises:
        ProviderError: TensorRT is chosen and its cache is disabled or holds no engine.
    """
    if TENSORRT not in chosen:
        return
    folder = engine_cache(config)
    if not any(folder.glob("*.engine")):
        raise ProviderError(f"model {config.name!r}: the TensorRT engine cache {folder} holds no "
                            "engine; build the engines on this board first with "
                            "'flightai profile MISSION --build-engines' (never in flight)")
