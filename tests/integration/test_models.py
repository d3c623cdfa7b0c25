"""Model admission: hash before onnxruntime, signature, providers, error mapping."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from flightai import load_mission
from flightai.errors import ModelHashError, ModelLoadError, ModelSignatureError, ProviderError
from flightai.infer import session as session_mod
from flightai.infer.model_task import ModelTask
from flightai.infer.session import ORT_ERRORS, build_session, choose_providers, read_verified
from tests.conftest import EXAMPLE


def _guidance_config(path: Path | None = None):  # type: ignore[no-untyped-def]
    model = load_mission(EXAMPLE / "mission.toml").model("guidance_mlp")
    return dataclasses.replace(model, file=path) if path else model


def test_a_model_whose_hash_differs_is_refused_before_onnxruntime(tmp_path, monkeypatch) -> None:
    tampered = bytearray(_guidance_config().file.read_bytes())
    tampered[-10] ^= 0x01
    path = tmp_path / "guidance.onnx"
    path.write_bytes(bytes(tampered))

    def must_not_be_called(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("onnxruntime saw refused bytes")

    monkeypatch.setattr(ort, "InferenceSession", must_not_be_called)
    config = _guidance_config(path)
    with pytest.raises(ModelHashError) as err:
        ModelTask.load(config)
    actual = hashlib.sha256(bytes(tampered)).hexdigest()
    assert config.sha256 in str(err.value) and actual in str(err.value)
    assert err.value.expected == config.sha256 and err.value.actual == actual


def test_session_is_built_from_the_verified_bytes_not_the_path(tmp_path, monkeypatch) -> None:
    seen: list[object] = []
    real = ort.InferenceSession

    def spy(source, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(source)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", spy)
    task = ModelTask.load(_guidance_config())
    assert isinstance(seen[0], bytes)
    assert hashlib.sha256(seen[0]).hexdigest() == task.report.sha256


def test_missing_file_is_a_model_load_error(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match="cannot read"):
        read_verified(_guidance_config(tmp_path / "absent.onnx"))


def test_corrupt_bytes_with_a_matching_hash_are_mapped_to_model_load_error(tmp_path) -> None:
    junk = b"this is not an onnx model"
    path = tmp_path / "junk.onnx"
    path.write_bytes(junk)
    config = dataclasses.replace(_guidance_config(path),
                                 sha256=hashlib.sha256(junk).hexdigest())
    with pytest.raises(ModelLoadError, match="onnxruntime failed to create a session"):
        ModelTask.load(config)


def test_every_onnxruntime_exception_class_is_mapped() -> None:
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    native = [getattr(state, n) for n in dir(state)
              if isinstance(getattr(state, n), type) and issubclass(getattr(state, n), Exception)]
    assert native, "onnxruntime exposes its exception classes"
    for exc_type in native:
        with pytest.raises(ModelLoadError), session_mod.ort_errors("m", "run"):
            raise exc_type("boom")
        assert issubclass(exc_type, ORT_ERRORS)


def test_declared_signature_must_match_the_model() -> None:
    config = _guidance_config()
    data = read_verified(config)
    wrong_shape = dataclasses.replace(
        config, inputs=(dataclasses.replace(config.inputs[0], shape=(1, 7)),))
    with pytest.raises(ModelSignatureError, match=r"'state': config declares float32\[1, 7\]"):
        build_session(wrong_shape, data)
    wrong_name = dataclasses.replace(
        config, outputs=(dataclasses.replace(config.outputs[0], name="accel"),))
    with pytest.raises(ModelSignatureError, match="declares outputs"):
        build_session(wrong_name, data)


def test_provider_fallback_is_reported_or_refused() -> None:
    config = dataclasses.replace(_guidance_config(),
                                 providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" in available:
        pytest.skip("a GPU build of onnxruntime is installed; this test is for CPU-only hosts")
    _, report = build_session(config, read_verified(config))
    assert report.fallback
    assert report.running[0] == "CPUExecutionProvider"
    if hasattr(ort.InferenceSession, "get_provider_graph_assignment_info"):
        assert dict(report.nodes_by_provider) == {"CPUExecutionProvider": 6}
    else:
        assert report.nodes_by_provider == ()
    with pytest.raises(ProviderError, match="CUDAExecutionProvider not available"):
        build_session(dataclasses.replace(config, allow_fallback=False), read_verified(config))


def test_provider_choice_keeps_configured_order() -> None:
    config = dataclasses.replace(
        _guidance_config(),
        providers=("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"))
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(config, gpu) == gpu
    assert choose_providers(config, ["CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "CUDAExecutionProvider", "CPUExecutionProvider"]
    only_gpu = dataclasses.replace(config, providers=("CUDAExecutionProvider",))
    assert choose_providers(only_gpu, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    with pytest.raises(ProviderError):
        choose_providers(dataclasses.replace(only_gpu, allow_fallback=False),
                         ["CPUExecutionProvider"])


def test_model_task_matches_a_bare_session_bit_for_bit() -> None:
    config = _guidance_config()
    task = ModelTask.load(config)
    bare = ort.InferenceSession(read_verified(config), session_mod.session_options(config),
                                providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    for _ in range(20):
        state = rng.normal(0, 500, (1, 6)).astype(np.float32)
        ours = task.run({"state": state})["accel_cmd"].copy()
        ref = bare.run(None, {"state": state})[0]
        assert ours.tobytes() == ref.tobytes()


def test_sessions_are_deterministic_across_instances() -> None:
    config = _guidance_config()
    a, b = ModelTask.load(config), ModelTask.load(config)
    state = np.linspace(-900, 900, 6, dtype=np.float32).reshape(1, 6)
    assert a.run({"state": state})["accel_cmd"].tobytes() == \
        b.run({"state": state})["accel_cmd"].tobytes()
