"""Signed mission bundles: build, verify, load from verified bytes, install A/B.

A bundle is one file: an uncompressed zip of the mission config, its models,
its Python code and data files, a manifest of their sizes and SHA-256 hashes,
and an Ed25519 signature over the exact manifest bytes (see ``docs/bundles.md``).
Imports the standard library and ``cryptography`` only (and flightai's config).
"""

from flightai.bundle.archive import Limits as Limits
from flightai.bundle.build import build_bundle as build_bundle
from flightai.bundle.install import install as install
from flightai.bundle.keys import load_trusted as load_trusted
from flightai.bundle.mission import BundledMission as BundledMission
from flightai.bundle.mission import open_bundle as open_bundle
from flightai.bundle.refusal import Refusal as Refusal
from flightai.bundle.verify import VerifiedBundle as VerifiedBundle
from flightai.bundle.verify import verify_bundle as verify_bundle
