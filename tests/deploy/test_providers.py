"""Execution providers on a CPU-only machine: selection, visible fallback, refusal, options."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest

from flightai.cli import main
from flightai.config import load_mission
from flightai.config.schema import ModelConfig
from flightai.errors import ConfigError, ProviderError
from flightai.infer.model_task import ModelTask
from flightai.infer.providers import require_engines, with_options
from flightai.infer.session import choose_providers

ROOT = Path(__file__).resolve().parents[2]
LITE = ROOT / "examples" / "ltd1-lite" / "mission.toml"
CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
GPU_ONLY = pytest.mark.skipif(CUDA in ort.get_available_providers(),
                              reason="a CPU-only onnxruntime is what these tests exercise")


def _model(*sets: str, name: str = "guidance_mlp") -> ModelConfig:
    return load_mission(LITE, list(sets)).model(name)


def test_choose_providers_keeps_the_configured_order_of_what_is_available() -> None:
    config = _model(f'models.guidance_mlp.providers=["{TRT}", "{CUDA}", "{CPU}"]')
    assert choose_providers(config, [CPU, CUDA]) == [CUDA, CPU]
    assert choose_providers(config, [CPU]) == [CPU]
    strict = _model(f'models.guidance_mlp.providers=["{CUDA}", "{CPU}"]',
                    "models.guidance_mlp.allow_fallback=false")
    assert choose_providers(strict, [CUDA, CPU]) == [CUDA, CPU]
    with pytest.raises(ProviderError, match=f"provider.s. {CUDA} not available"):
        choose_providers(strict, [CPU])


@GPU_ONLY
def test_a_missing_gpu_provider_falls_back_to_cpu_visibly() -> None:
    config = _model(f'models.guidance_mlp.providers=["{CUDA}", "{CPU}"]')
    model = ModelTask.load(config)
    assert model.report.requested == (CUDA, CPU)
    assert model.report.running == (CPU,) and model.report.fallback
    assert model.describe()["fallback"] == "true"


@GPU_ONLY
def test_check_reports_the_fallback(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["check", str(LITE), "--set",
                   f'models.guidance_mlp.providers=["{CUDA}", "{CPU}"]'])
    out = capsys.readouterr().out
    assert status == 0
    assert (f"providers: requested {CUDA}, {CPU}; running {CPU}" in out
            and "WARNING: provider fallback" in out)


@GPU_ONLY
def test_a_forbidden_fallback_is_refused_naming_the_provider(
        capsys: pytest.CaptureFixture[str]) -> None:
    sets = [f'models.guidance_mlp.providers=["{TRT}", "{CUDA}", "{CPU}"]',
            "models.guidance_mlp.allow_fallback=false"]
    with pytest.raises(ProviderError, match=f"{TRT}, {CUDA} not available .* allow_fallback"):
        ModelTask.load(_model(*sets))
    argv = ["check", str(LITE)]
    for item in sets:
        argv += ["--set", item]
    assert main(argv) == 1
    assert "allow_fallback = false" in capsys.readouterr().out


@GPU_ONLY
def test_provider_options_are_pinned_and_reported(tmp_path: Path) -> None:
    prefix = f"models.guidance_mlp.provider_options.{TRT}"
    config = _model(f'models.guidance_mlp.providers=["{TRT}", "{CPU}"]',
                    f"{prefix}.trt_engine_cache_enable=true",
                    f'{prefix}.trt_engine_cache_path="engines"',
                    f"{prefix}.trt_fp16_enable=false", f"{prefix}.device_id=0")
    options = config.options_for(TRT)
    assert options == {"trt_engine_cache_enable": "True",
                       "trt_engine_cache_path": str(LITE.parent / "engines"),
                       "trt_fp16_enable": "False", "device_id": "0"}
    assert with_options(config, [TRT, CPU]) == [(TRT, options), (CPU, {})]
    report = ModelTask.load(config).report  # TensorRT is absent here: CPU runs it
    assert report.running == (CPU,) and report.fallback
    assert (f"{TRT}.trt_fp16_enable", "False") in report.options


def test_tensorrt_needs_a_prebuilt_engine_cache(tmp_path: Path) -> None:
    prefix = f"models.guidance_mlp.provider_options.{TRT}"
    providers = f'models.guidance_mlp.providers=["{TRT}", "{CPU}"]'
    cache = tmp_path / "engines"
    cache.mkdir()
    config = _model(providers, f"{prefix}.trt_engine_cache_enable=true",
                    f'{prefix}.trt_engine_cache_path="{cache}"')
    require_engines(config, [CPU])  # TensorRT not chosen: nothing to check
    with pytest.raises(ProviderError, match="holds no engine; build the engines on this board"):
        require_engines(config, [TRT, CPU])
    (cache / "TensorrtExecutionProvider_TRTKernel_graph_0.engine").write_bytes(b"engine")
    require_engines(config, [TRT, CPU])
    disabled = _model(providers, f"{prefix}.trt_engine_cache_enable=false",
                      f'{prefix}.trt_engine_cache_path="{cache}"')
    with pytest.raises(ProviderError, match="trt_engine_cache_enable must be true"):
        require_engines(disabled, [TRT, CPU])
    with pytest.raises(ProviderError, match="trt_engine_cache_path is needed"):
        require_engines(_model(providers, f"{prefix}.trt_engine_cache_enable=true"), [TRT])


@pytest.mark.parametrize(("sets", "path", "expected"), [
    ([f"models.guidance_mlp.provider_options.{CUDA}.device_id=0"],
     f"models[0].provider_options.{CUDA}", "a provider listed in providers"),
    ([f'models.guidance_mlp.provider_options.{CPU}.arena=[1]'],
     f"models[0].provider_options.{CPU}.arena", "a string, number or boolean"),
    (["runtime.process.cpu_affinity=[0, 0]"], "runtime.process.cpu_affinity", "each CPU once"),
    (["runtime.process.realtime_priority=100"], "runtime.process.realtime_priority",
     "an integer <= 99"),
    (['runtime.process.if_denied="ignore"'], "runtime.process.if_denied", "one of 'refuse'"),
    (["runtime.admission.margin_pct=-1"], "runtime.admission.margin_pct", "an integer >= 0"),
])
def test_deployment_keys_are_checked_with_their_path(sets: list[str], path: str,
                                                     expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_mission(LITE, sets)
    assert info.value.path == path and expected in info.value.expected
