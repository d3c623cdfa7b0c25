"""Bundle fixtures: signing keys, copies of the ltd1-lite mission, signed bundles."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from flightai.bundle.build import build_bundle
from flightai.bundle.keys import TrustedKey, generate, load_signing_key, load_trusted
from tests.conftest import EXAMPLE

Keys = tuple[Path, Path]


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """(secret, public) key files of the test signer."""
    return generate(tmp_path_factory.mktemp("keys"), "ops")


@pytest.fixture(scope="session")
def trusted(keys: Keys) -> tuple[TrustedKey, ...]:
    return load_trusted([keys[1]])


@pytest.fixture
def lite(tmp_path: Path) -> Path:
    """A private copy of the ltd1-lite mission folder; returns its mission.toml."""
    folder = tmp_path / "lite"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder / "mission.toml"


BuildFn = Callable[[Path, int], Path]


@pytest.fixture
def build(keys: Keys, tmp_path: Path) -> BuildFn:
    """Build and sign a bundle of a mission at a version; returns the bundle file."""

    counter = itertools.count()

    def make(mission: Path, version: int) -> Path:
        data, _ = build_bundle(mission, load_signing_key(keys[0]), version)
        out = tmp_path / f"b{next(counter)}-v{version}.bundle"
        out.write_bytes(data)
        return out

    return make
