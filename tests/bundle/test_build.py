"""Keys, the builder's refusals, and a signed manifest that is itself malformed."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from flightai.bundle.archive import MANIFEST_NAME, SIGNATURE_NAME
from flightai.bundle.build import build_bundle
from flightai.bundle.keys import TrustedKey, generate, load_signing_key
from flightai.bundle.verify import verify_bundle
from flightai.cli import main
from flightai.config import load_mission
from flightai.errors import BundleError, ConfigError
from tests.bundle.archives import member, rebuild
from tests.bundle.conftest import BuildFn, Keys
from tests.conftest import ROOT


def test_keygen_writes_a_0600_secret_and_never_overwrites(tmp_path: Path) -> None:
    secret, public = generate(tmp_path, "k")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert b"BEGIN PRIVATE KEY" in secret.read_bytes()
    assert b"BEGIN PUBLIC KEY" in public.read_bytes()
    before = secret.read_bytes()
    with pytest.raises(BundleError, match="exists already") as info:
        generate(tmp_path, "k")
    assert info.value.reason == "bad_key" and secret.read_bytes() == before


def test_a_public_key_is_not_a_signing_key(keys: Keys) -> None:
    with pytest.raises(BundleError, match="not an unencrypted PEM secret key"):
        load_signing_key(keys[1])


def test_a_data_file_named_by_a_parameter_must_be_packed(keys: Keys) -> None:
    l2 = ROOT / "models" / "ltd1" / "l2.toml"
    with pytest.raises(BundleError, match=r"tasks\[0\]\.params\.map_file names "
                       r"'maps/ltd1-map.npz', a file beside the mission that is not packed"):
        build_bundle(l2, load_signing_key(keys[0]), 1)
    _, manifest = build_bundle(l2, load_signing_key(keys[0]), 1, ["maps"])
    assert "maps/ltd1-map.npz" in [f.path for f in manifest.files]


def test_symlinks_and_files_outside_the_mission_folder_are_refused(lite: Path,
                                                                   keys: Keys) -> None:
    key = load_signing_key(keys[0])
    (lite.parent / "link.npz").symlink_to(lite.parent / "tasks.py")
    with pytest.raises(BundleError, match="symlink"):
        build_bundle(lite, key, 1, ["link.npz"])
    outside = lite.parent.parent / "outside.onnx"
    (lite.parent / "models" / "guidance_mlp.onnx").rename(outside)
    text = lite.read_text().replace('"models/guidance_mlp.onnx"', '"../outside.onnx"')
    lite.write_text(text)
    with pytest.raises(BundleError, match=r"models\[0\]\.file: .* is outside the mission folder"):
        build_bundle(lite, key, 1)


def test_a_model_whose_hash_is_not_the_configured_one_is_not_packed(lite: Path,
                                                                    keys: Keys) -> None:
    model = lite.parent / "models" / "camera_monitor.onnx"
    model.write_bytes(model.read_bytes() + b"\0")
    with pytest.raises(BundleError, match=r"model 'camera_monitor'.*the config says"):
        build_bundle(lite, load_signing_key(keys[0]), 1)


def test_bundle_include_paths_are_checked_with_their_key_path(lite: Path) -> None:
    lite.write_text(lite.read_text() + '\n[bundle]\ninclude = ["../secrets"]\n')
    with pytest.raises(ConfigError, match=r"bundle\.include\[0\]: expected a path relative"):
        load_mission(lite)


def test_a_signed_but_malformed_manifest_is_refused(lite: Path, build: BuildFn, keys: Keys,
                                                    trusted: tuple[TrustedKey, ...]) -> None:
    bundle = build(lite, 1).read_bytes()
    key = load_signing_key(keys[0])
    doc = json.loads(member(bundle, MANIFEST_NAME))
    for change, expected in (({"extra": 1}, "expected exactly the keys"),
                             ({"version": 0}, "manifest.version: expected 1"),
                             ({"key_id": "0" * 64}, "signed by key"),
                             ({"config": "other.toml"}, "is not among the files")):
        manifest = json.dumps({**doc, **change}).encode()
        forged = rebuild(bundle, {MANIFEST_NAME: manifest, SIGNATURE_NAME: key.sign(manifest)})
        with pytest.raises(BundleError, match=expected) as info:
            verify_bundle(forged, trusted)
        assert info.value.reason == "bad_manifest"


def test_a_signed_manifest_listing_a_file_and_a_file_inside_it_is_refused(
        lite: Path, build: BuildFn, keys: Keys, trusted: tuple[TrustedKey, ...]) -> None:
    bundle = build(lite, 1).read_bytes()
    key = load_signing_key(keys[0])
    doc = json.loads(member(bundle, MANIFEST_NAME))
    listed = next(f for f in doc["files"] if f["path"].endswith(".py"))
    inner = {**listed, "path": listed["path"] + "/inner.py"}
    manifest = json.dumps({**doc, "files": [*doc["files"], inner]}).encode()
    forged = rebuild(bundle, {MANIFEST_NAME: manifest, SIGNATURE_NAME: key.sign(manifest)})
    with pytest.raises(BundleError, match=r"as a file and as the folder of .*inner\.py") as info:
        verify_bundle(forged, trusted)
    assert info.value.reason == "duplicate"


def test_board_state_paths_inside_the_mission_folder_are_refused(lite: Path,
                                                                  keys: Keys) -> None:
    text = lite.read_text().replace(
        'providers = ["CPUExecutionProvider"]',
        'providers = ["TensorrtExecutionProvider", "CPUExecutionProvider"]\n'
        'provider_options = { TensorrtExecutionProvider = { trt_engine_cache_path = "trt" } }',
        1)
    lite.write_text(text)
    with pytest.raises(BundleError, match=r"models\[0\]\.provider_options\."
                       r"TensorrtExecutionProvider\.trt_engine_cache_path: board state"):
        build_bundle(lite, load_signing_key(keys[0]), 1)


def test_keygen_into_a_folder_that_cannot_be_made_is_a_clear_refusal(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(BundleError, match="cannot create") as info:
        generate(blocker / "keys", "k")
    assert info.value.reason == "bad_key"


def test_bundle_build_to_a_folder_that_does_not_exist_is_one_error_line(
        lite: Path, keys: Keys, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "missing" / "lite.bundle"
    assert main(["bundle", "build", str(lite), "--key", str(keys[0]), "--version", "1",
                 "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"bundle refused (build): cannot write {out}" in err and "Traceback" not in err


def test_a_malformed_source_date_epoch_is_refused(lite: Path, keys: Keys,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(BundleError, match="SOURCE_DATE_EPOCH: expected seconds since 1970"):
        build_bundle(lite, load_signing_key(keys[0]), 1)


def test_a_parameter_too_long_to_be_a_file_name_is_just_a_string(lite: Path, keys: Keys) -> None:
    text = lite.read_text()
    lite.write_text(text.replace("params = { seed = 7 }",
                                 f'params = {{ seed = 7, note = "{"x" * 300}" }}'))
    assert "x" * 300 in lite.read_text()
    _, manifest = build_bundle(lite, load_signing_key(keys[0]), 1)
    assert "mission.toml" in [f.path for f in manifest.files]
