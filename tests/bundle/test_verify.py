"""Verification refuses every tampering before anything is loaded."""

from __future__ import annotations

import hashlib
import io
import stat
import warnings
import zipfile
from pathlib import Path

import onnxruntime as ort
import pytest

from flightai.bundle.archive import (
    DEFAULT_LIMITS,
    FILES_PREFIX,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    Limits,
    write_archive,
)
from flightai.bundle.keys import TrustedKey, generate, load_trusted
from flightai.bundle.mission import open_bundle
from flightai.bundle.refusal import Refusal
from flightai.bundle.state import State, check_rollback, write_state
from flightai.bundle.verify import verify_bundle
from flightai.errors import BundleError
from flightai.runtime import load_tasks
from tests.bundle.archives import entries, member, rebuild
from tests.bundle.conftest import BuildFn

SIGNATURE_REFUSALS = {Refusal.BAD_SIGNATURE.value, Refusal.UNTRUSTED_KEY.value}


def refusal(data: bytes, trusted: tuple[TrustedKey, ...],
            limits: Limits = DEFAULT_LIMITS) -> str:
    with pytest.raises(BundleError) as info:
        verify_bundle(data, trusted, limits)
    return info.value.reason


def test_a_signed_bundle_verifies_and_names_every_file(lite: Path, build: BuildFn,
                                                       trusted: tuple[TrustedKey, ...]) -> None:
    verified = verify_bundle(build(lite, 1).read_bytes(), trusted)
    assert sorted(verified.files) == ["mission.toml", "models/camera_monitor.onnx",
                                      "models/guidance_mlp.onnx", "tasks.py"]
    assert verified.files["tasks.py"] == (lite.parent / "tasks.py").read_bytes()
    assert verified.manifest.version == 1 and verified.signer.id == trusted[0].id


def test_every_bit_flip_of_the_manifest_and_signature_is_refused(
        lite: Path, build: BuildFn, trusted: tuple[TrustedKey, ...]) -> None:
    bundle = build(lite, 1).read_bytes()
    manifest, signature = member(bundle, MANIFEST_NAME), member(bundle, SIGNATURE_NAME)
    others = [(n, d) for n, d in entries(bundle) if n not in (MANIFEST_NAME, SIGNATURE_NAME)]
    tried = 0
    for name, original in ((MANIFEST_NAME, manifest), (SIGNATURE_NAME, signature)):
        for bit in range(len(original) * 8):
            flipped = bytearray(original)
            flipped[bit // 8] ^= 1 << (bit % 8)
            parts = {MANIFEST_NAME: manifest, SIGNATURE_NAME: signature, name: bytes(flipped)}
            # A fresh, valid archive around the flipped bytes: only the signature can object.
            data = write_archive([*parts.items(), *others])
            assert refusal(data, trusted) in SIGNATURE_REFUSALS, (name, bit)
            tried += 1
    assert tried == (len(manifest) + 64) * 8


def test_a_bundle_signed_by_another_key_is_refused_as_untrusted(
        lite: Path, build: BuildFn, tmp_path: Path) -> None:
    _, other = generate(tmp_path / "other", "other")
    assert refusal(build(lite, 1).read_bytes(), load_trusted([other])) == "untrusted_key"


class _Spy:
    """Counts InferenceSession constructions, delegating to the real class."""

    calls = 0
    real = ort.InferenceSession

    def __new__(cls, *args: object, **kwargs: object) -> ort.InferenceSession:
        _Spy.calls += 1
        return _Spy.real(*args, **kwargs)


@pytest.mark.parametrize("resign", [False, True], ids=["manifest-kept", "manifest-edited"])
def test_a_tampered_model_is_refused_before_onnxruntime_is_called(
        lite: Path, build: BuildFn, trusted: tuple[TrustedKey, ...], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, resign: bool) -> None:
    monkeypatch.setattr(ort, "InferenceSession", _Spy)
    _Spy.calls = 0
    path = build(lite, 1)
    good = open_bundle(path, trusted, None)
    load_tasks(good.config)
    assert _Spy.calls == 2  # the spy sees real loads: two models
    bundle = path.read_bytes()
    name = FILES_PREFIX + "models/guidance_mlp.onnx"
    model = bytearray(member(bundle, name))
    model[len(model) // 2] ^= 0x01
    replace = {name: bytes(model)}
    if resign:  # an attacker fixes the manifest's hash too; the signature then fails
        text = member(bundle, MANIFEST_NAME).decode()
        old = hashlib.sha256(member(bundle, name)).hexdigest()
        replace[MANIFEST_NAME] = text.replace(old, hashlib.sha256(model).hexdigest()).encode()
    tampered = tmp_path / "tampered.bundle"
    tampered.write_bytes(rebuild(bundle, replace))
    _Spy.calls = 0
    with pytest.raises(BundleError) as info:
        open_bundle(tampered, trusted, None)
    assert info.value.reason == ("bad_signature" if resign else "hash_mismatch")
    assert _Spy.calls == 0


def test_rollback_is_refused_against_the_floor(lite: Path, build: BuildFn,
                                               trusted: tuple[TrustedKey, ...],
                                               tmp_path: Path) -> None:
    old, new = build(lite, 3), build(lite, 5)
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    floor = verify_bundle(new.read_bytes(), trusted)
    write_state(state_dir, State(floor_version=5, floor_bundle_id=floor.bundle_id))
    with pytest.raises(BundleError, match="version 3 is lower than version 5") as info:
        open_bundle(old, trusted, state_dir)
    assert info.value.reason == "rollback"
    open_bundle(new, trusted, state_dir).close()
    (lite.parent / "tasks.py").write_text((lite.parent / "tasks.py").read_text() + "\n#\n")
    other5 = verify_bundle(build(lite, 5).read_bytes(), trusted)  # same version, other content
    with pytest.raises(BundleError, match="already installed here as bundle"):
        check_rollback(State(floor_version=5, floor_bundle_id=floor.bundle_id), 5,
                       other5.bundle_id)


def test_a_mix_of_two_bundles_is_refused(lite: Path, build: BuildFn,
                                         trusted: tuple[TrustedKey, ...]) -> None:
    one = build(lite, 1).read_bytes()
    tasks = lite.parent / "tasks.py"
    tasks.write_text(tasks.read_text().replace("the", "THE", 1))  # same size, other bytes
    two = build(lite, 2).read_bytes()
    code = FILES_PREFIX + "tasks.py"
    # v1's manifest and signature with v2's code; v2's with v1's code; v1's manifest, v2's sig.
    assert refusal(rebuild(one, {code: member(two, code)}), trusted) == "hash_mismatch"
    assert refusal(rebuild(two, {code: member(one, code)}), trusted) == "hash_mismatch"
    assert refusal(rebuild(one, {SIGNATURE_NAME: member(two, SIGNATURE_NAME)}),
                   trusted) == "bad_signature"


def test_unlisted_and_missing_files_are_refused(lite: Path, build: BuildFn,
                                                trusted: tuple[TrustedKey, ...]) -> None:
    bundle = build(lite, 1).read_bytes()
    extra = write_archive([*entries(bundle), (FILES_PREFIX + "evil.py", b"import os\n")])
    assert refusal(extra, trusted) == "unlisted_file"
    outside = write_archive([*entries(bundle), ("README", b"hi")])
    assert refusal(outside, trusted) == "unlisted_file"
    missing = write_archive([e for e in entries(bundle) if e[0] != FILES_PREFIX + "tasks.py"])
    assert refusal(missing, trusted) == "missing_file"
    unsigned = write_archive([e for e in entries(bundle) if e[0] != SIGNATURE_NAME])
    assert refusal(unsigned, trusted) == "no_signature"


def _raw_zip(*members: tuple[zipfile.ZipInfo | str, bytes]) -> bytes:
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns on duplicate names: we want them
        with zipfile.ZipFile(out, "w") as archive:
            for info, data in members:
                archive.writestr(info, data)
    return out.getvalue()


def _entry(name: str, mode: int = stat.S_IFREG | 0o644,
           compress: int = zipfile.ZIP_STORED) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    info.compress_type = compress
    return info


@pytest.mark.parametrize(("name", "mode", "reason"), [
    ("/etc/passwd", stat.S_IFREG | 0o644, "unsafe_path"),
    ("../escape.py", stat.S_IFREG | 0o644, "unsafe_path"),
    ("files/../../escape.py", stat.S_IFREG | 0o644, "unsafe_path"),
    ("files/./tasks.py", stat.S_IFREG | 0o644, "unsafe_path"),
    ("files//tasks.py", stat.S_IFREG | 0o644, "unsafe_path"),
    ("files\\..\\x", stat.S_IFREG | 0o644, "unsafe_path"),
    ("C:/x", stat.S_IFREG | 0o644, "unsafe_path"),
    ("files/link", stat.S_IFLNK | 0o777, "not_a_file"),
    ("files/dev", stat.S_IFCHR | 0o600, "not_a_file"),
    ("files/fifo", stat.S_IFIFO | 0o600, "not_a_file"),
    ("files/dir/", stat.S_IFDIR | 0o755, "not_a_file"),
])
def test_unsafe_archive_paths_are_refused(name: str, mode: int, reason: str,
                                          trusted: tuple[TrustedKey, ...]) -> None:
    data = _raw_zip((_entry(name, mode), b"/etc/shadow" if mode & stat.S_IFLNK else b"x"))
    assert refusal(data, trusted) == reason


def test_no_payload_entry_is_read_before_the_signature_checks_out(
        lite: Path, build: BuildFn, trusted: tuple[TrustedKey, ...], tmp_path: Path) -> None:
    bundle = bytearray(build(lite, 1).read_bytes())
    tasks = member(bytes(bundle), FILES_PREFIX + "tasks.py")
    bundle[bytes(bundle).index(tasks) + len(tasks) // 2] ^= 0x01  # its CRC-32 now fails
    stranger = load_trusted([generate(tmp_path / "stranger", "stranger")[1]])
    assert refusal(bytes(bundle), stranger) == "untrusted_key"  # tasks.py never read
    assert refusal(bytes(bundle), trusted) == "not_an_archive"  # read once signed: refused


def test_duplicate_names_are_refused(lite: Path, build: BuildFn,
                                     trusted: tuple[TrustedKey, ...]) -> None:
    bundle = build(lite, 1).read_bytes()
    twice = _raw_zip(*[(_entry(n), d) for n, d in entries(bundle)],
                     (_entry(FILES_PREFIX + "tasks.py"), b"raise SystemExit\n"))
    assert refusal(twice, trusted) == "duplicate"


def test_size_bombs_are_refused_before_inflating(trusted: tuple[TrustedKey, ...]) -> None:
    bomb = _raw_zip((_entry("files/zeros", compress=zipfile.ZIP_DEFLATED), bytes(50_000_000)))
    assert len(bomb) < 100_000
    assert refusal(bomb, trusted) == "compressed"
    big = _raw_zip((_entry("files/big"), bytes(2_000_000)))
    assert refusal(big, trusted, Limits(max_bundle_bytes=1_000_000)) == "too_large"
    many = _raw_zip(*[(_entry(f"files/{i}"), b"") for i in range(20)])
    assert refusal(many, trusted, Limits(max_entries=10)) == "too_large"


def test_overlapping_entries_are_refused(trusted: tuple[TrustedKey, ...]) -> None:
    one = _raw_zip((_entry("files/a"), bytes(1000)))
    archive = zipfile.ZipFile(io.BytesIO(one))
    info = archive.infolist()[0]
    central = one[archive.start_dir:]
    end = central[central.index(b"PK\x05\x06"):]
    record = central[:len(central) - len(end)]
    copies = [record.replace(b"files/a", f"files/{c}".encode()) for c in "abcdefgh"]
    count = len(copies).to_bytes(2, "little")
    size = sum(len(c) for c in copies).to_bytes(4, "little")
    end = end[:8] + count + count + size + end[16:]  # 8 names over one stored entry
    bomb = one[:archive.start_dir] + b"".join(copies) + end
    assert info.file_size == 1000 and len(bomb) < 2000
    assert refusal(bomb, trusted) == "too_large"


def test_garbage_is_not_an_archive(trusted: tuple[TrustedKey, ...]) -> None:
    assert refusal(b"", trusted) == "not_an_archive"
    assert refusal(b"PK\x03\x04" + bytes(100), trusted) == "not_an_archive"


def test_a_config_naming_code_outside_the_bundle_is_refused(
        lite: Path, build: BuildFn, trusted: tuple[TrustedKey, ...], tmp_path: Path) -> None:
    path = build(lite, 1)
    with pytest.raises(BundleError, match="is not a file of the bundle") as info:
        open_bundle(path, trusted, None,
                    overrides=[f"tasks.thrust.function=\"../{lite.parent.name}/tasks.py:x\""])
    assert info.value.reason == "not_in_bundle"
