"""Build onnxruntime sessions from verified bytes; the one onnxruntime boundary.

A model file is read once, hashed, and refused before onnxruntime sees it when
the SHA-256 differs. The session is built from those bytes (never by
reopening the path), with every result-changing option pinned, and the
providers that actually run it (down to node placement) are reported.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_state

from flightai.config.schema import ExecutionMode, GraphOptimization, ModelConfig, PortSpec
from flightai.errors import ModelHashError, ModelLoadError, ModelSignatureError, ProviderError
from flightai.infer.providers import require_engines, with_options

CPU = "CPUExecutionProvider"

#: Every exception class onnxruntime's native layer raises, plus what its Python layer raises.
ORT_ERRORS: tuple[type[BaseException], ...] = (
    *(obj for _, obj in inspect.getmembers(_ort_state, inspect.isclass)
      if issubclass(obj, Exception)),
    RuntimeError, ValueError, TypeError,
)

_ORT_TYPES = {
    "tensor(float16)": "float16", "tensor(float)": "float32", "tensor(double)": "float64",
    "tensor(int8)": "int8", "tensor(int16)": "int16", "tensor(int32)": "int32",
    "tensor(int64)": "int64", "tensor(uint8)": "uint8", "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32", "tensor(uint64)": "uint64", "tensor(bool)": "bool",
}
_OPT_LEVELS = {
    GraphOptimization.DISABLED: ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    GraphOptimization.BASIC: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    GraphOptimization.EXTENDED: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    GraphOptimization.ALL: ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


@dataclass(frozen=True)
class SessionReport:
    """What was admitted and what actually runs it.

    Attributes:
        model: the model's config name.
        sha256: the verified hash of the bytes the session was built from.
        requested: providers in configured order.
        running: providers onnxruntime runs the session with, in priority order.
        nodes_by_provider: how many graph nodes each provider was assigned (empty
            when this onnxruntime cannot report placement).
        fallback: True when the first requested provider is not the one running
            every node (unavailable, failed, or nodes placed elsewhere).
        options: the pinned session options, as strings (platform fingerprint).
    """

    model: str
    sha256: str
    requested: tuple[str, ...]
    running: tuple[str, ...]
    nodes_by_provider: tuple[tuple[str, int], ...]
    fallback: bool
    options: tuple[tuple[str, str], ...]


@contextmanager
def ort_errors(model: str, action: str) -> Iterator[None]:
    """Translate any onnxruntime exception raised inside into a :class:`ModelLoadError`."""
    try:
        yield
    except ORT_ERRORS as exc:
        raise ModelLoadError(f"model {model!r}: onnxruntime failed to {action}: "
                             f"{type(exc).__name__}: {exc}") from exc


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data`` as 64 lowercase hex digits."""
    return hashlib.sha256(data).hexdigest()


def read_verified(config: ModelConfig) -> bytes:
    """Read the model file once and return its bytes if the SHA-256 matches.

    A model from a verified bundle carries its bytes (``config.data``): they
    are checked against the configured hash the same way, and no file is read.

    Raises:
        ModelHashError: with both hashes, before onnxruntime is involved.
        ModelLoadError: when the file cannot be read.
    """
    try:
        data = config.data if config.data is not None else config.file.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"model {config.name!r}: cannot read {config.file}: "
                             f"{exc.strerror or exc}") from exc
    actual = sha256_hex(data)
    if actual != config.sha256:
        raise ModelHashError(config.name, str(config.file), config.sha256, actual)
    return data


def session_options(config: ModelConfig) -> ort.SessionOptions:
    """Session options with every result-changing setting pinned from the config."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = config.intra_op_threads
    so.inter_op_num_threads = config.inter_op_threads
    so.graph_optimization_level = _OPT_LEVELS[config.graph_optimization]
    so.execution_mode = (ort.ExecutionMode.ORT_SEQUENTIAL
                         if config.execution_mode is ExecutionMode.SEQUENTIAL
                         else ort.ExecutionMode.ORT_PARALLEL)
    so.use_deterministic_compute = config.deterministic_compute
    so.log_severity_level = 3
    spin = "1" if config.spinning else "0"
    so.add_session_config_entry("session.intra_op.allow_spinning", spin)
    so.add_session_config_entry("session.inter_op.allow_spinning", spin)
    so.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    return so


def pinned_options(config: ModelConfig) -> tuple[tuple[str, str], ...]:
    """The pinned options as (name, value) strings, for reports and fingerprints."""
    return (("intra_op_threads", str(config.intra_op_threads)),
            ("inter_op_threads", str(config.inter_op_threads)),
            ("spinning", str(config.spinning).lower()),
            ("graph_optimization", config.graph_optimization.value),
            ("execution_mode", config.execution_mode.value),
            ("deterministic_compute", str(config.deterministic_compute).lower()),
            ("onnxruntime", ort.__version__),
            *((f"{provider}.{key}", value) for provider, options in config.provider_options
              for key, value in options))


def choose_providers(config: ModelConfig, available: list[str]) -> list[str]:
    """The configured providers that this onnxruntime build offers, in order.

    Raises:
        ProviderError: a configured provider is missing and fallback is forbidden,
            or none is available at all.
    """
    chosen = [p for p in config.providers if p in available]
    missing = [p for p in config.providers if p not in available]
    if missing and not config.allow_fallback:
        raise ProviderError(f"model {config.name!r}: provider(s) {', '.join(missing)} not "
                            f"available (this onnxruntime offers {', '.join(available)}) and "
                            "allow_fallback = false")
    if not chosen:
        if CPU not in available:  # pragma: no cover - every onnxruntime build has CPU
            raise ProviderError(f"model {config.name!r}: no configured provider is available")
        chosen = [CPU]
    return chosen


def build_session(config: ModelConfig, data: bytes, *, build_engines: bool = False,
                  ) -> tuple[ort.InferenceSession, SessionReport]:
    """Create the session from verified bytes, check its signature and report providers.

    Args:
        config: the model entry.
        data: its verified bytes.
        build_engines: let TensorRT build missing engines into its cache (only
            ``flightai profile --build-engines`` does, on the board, never in flight).

    Raises:
        ProviderError: fallback happened and the config forbids it, or TensorRT
            has no prebuilt engine.
        ModelSignatureError: inputs or outputs differ from the config.
        ModelLoadError: onnxruntime refused the bytes.
    """
    chosen = choose_providers(config, ort.get_available_providers())
    if not build_engines:
        require_engines(config, chosen)
    so = session_options(config)
    if not config.allow_fallback and chosen[0] != CPU:
        # Make onnxruntime fail instead of silently placing nodes on the CPU.
        so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    with ort_errors(config.name, "create a session"):
        session = ort.InferenceSession(data, sess_options=so,
                                       providers=with_options(config, chosen))
        running = tuple(session.get_providers())
        nodes = _node_placement(session)
    check_signature(config, session)
    first = config.providers[0]
    fallback = running[0] != first or any(ep != first for ep, _ in nodes)
    if fallback and not config.allow_fallback:
        raise ProviderError(f"model {config.name!r}: requested {first} but onnxruntime runs "
                            f"{', '.join(f'{n} nodes on {ep}' for ep, n in nodes)} and "
                            "allow_fallback = false")
    report = SessionReport(config.name, sha256_hex(data), config.providers, running, nodes,
                           fallback, pinned_options(config))
    return session, report


def _node_placement(session: ort.InferenceSession) -> tuple[tuple[str, int], ...]:
    """Nodes per provider; empty where onnxruntime cannot tell (before 1.24)."""
    info = getattr(session, "get_provider_graph_assignment_info", None)
    if info is None:
        return ()
    counts: dict[str, int] = {}
    for subgraph in info():
        counts[subgraph.ep_name] = counts.get(subgraph.ep_name, 0) + len(subgraph.get_nodes())
    return tuple(counts.items())


def _describe_ports(ports: list[PortSpec]) -> str:
    return ", ".join(f"{p.name}: {p.dtype}{list(p.shape)}" for p in ports)


def check_signature(config: ModelConfig, session: ort.InferenceSession) -> None:
    """Compare the session's inputs and outputs with the config's, name by name.

    A symbolic dimension in the model accepts the configured size; a fixed one
    must equal it.

    Raises:
        ModelSignatureError: naming the port, what the config says and what the model has.
    """
    for kind, declared, actual in (("input", config.inputs, session.get_inputs()),
                                   ("output", config.outputs, session.get_outputs())):
        found = [PortSpec(a.name, _ORT_TYPES.get(a.type, a.type),
                          tuple(d if isinstance(d, int) else -1 for d in a.shape)) for a in actual]
        if sorted(p.name for p in declared) != sorted(p.name for p in found):
            raise ModelSignatureError(
                f"model {config.name!r}: config declares {kind}s "
                f"[{_describe_ports(list(declared))}], the model has [{_describe_ports(found)}]")
        by_name = {p.name: p for p in found}
        for port in declared:
            model_port = by_name[port.name]
            shape_ok = len(port.shape) == len(model_port.shape) and all(
                m in (-1, d) for d, m in zip(port.shape, model_port.shape, strict=True))
            if model_port.dtype != port.dtype or not shape_ok:
                raise ModelSignatureError(
                    f"model {config.name!r} {kind} {port.name!r}: config declares "
                    f"{port.dtype}{list(port.shape)}, the model has "
                    f"{model_port.dtype}{list(model_port.shape)}")
