"""Random damage to a bundle file: refused with a BundleError, or the very same content."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flightai.bundle.build import build_bundle
from flightai.bundle.keys import TrustedKey, load_signing_key
from flightai.bundle.verify import VerifiedBundle, verify_bundle
from flightai.errors import BundleError
from tests.bundle.conftest import Keys
from tests.conftest import EXAMPLE


@pytest.fixture(scope="module")
def original(keys: Keys, trusted: tuple[TrustedKey, ...]) -> tuple[bytes, VerifiedBundle]:
    data, _ = build_bundle(EXAMPLE / "mission.toml", load_signing_key(keys[0]), 1)
    return data, verify_bundle(data, trusted)


@settings(max_examples=1000, deadline=None)
@given(st.data())
def test_damaged_bundles_are_refused_or_unchanged(original: tuple[bytes, VerifiedBundle],
                                                  trusted: tuple[TrustedKey, ...],
                                                  data: st.DataObject) -> None:
    bundle, good = original
    damaged = bytearray(bundle)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "byte", "truncate", "insert"]))
        at = data.draw(st.integers(0, len(damaged) - 1))
        if kind == "flip":
            damaged[at] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "byte":
            damaged[at] = data.draw(st.integers(0, 255))
        elif kind == "truncate":
            del damaged[at:]
            damaged += b"\0" * data.draw(st.integers(0, 3))
        else:
            damaged[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        if not damaged:
            damaged = bytearray(b"\0")
    try:
        verified = verify_bundle(bytes(damaged), trusted)
    except BundleError:
        return
    assert verified.bundle_id == good.bundle_id and dict(verified.files) == dict(good.files)
