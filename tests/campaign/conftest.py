"""Campaign fixtures: the L2 mission, a small campaign spec, and what makes two runs comparable."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from hil.campaign.cases import CampaignSpec

ROOT = Path(__file__).resolve().parents[2]
L2 = ROOT / "models" / "ltd1" / "l2.toml"
ENTROPY = 11
CASES = 4


@pytest.fixture(scope="session")
def mission(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the L2 mission folder: what every run of a test session flies."""
    folder = tmp_path_factory.mktemp("mission") / "ltd1"
    shutil.copytree(L2.parent, folder, ignore=shutil.ignore_patterns("results", "__pycache__"))
    return folder / L2.name


@pytest.fixture(scope="session")
def spec(mission: Path) -> CampaignSpec:
    """Four dispersed L2 cases (about 2-3 s of CPU each)."""
    return CampaignSpec.from_file(mission, entropy=ENTROPY, cases=CASES)


def outcome(folder: Path) -> dict[str, Any]:
    """Everything a campaign folder says about the cases, without how they ran (wall, worker)."""
    cases = []
    for path in sorted((folder / "cases").glob("*.json")):
        record = json.loads(path.read_text())
        record.pop("run")
        cases.append(record)
    return {"cases": cases, "report": json.loads((folder / "report.json").read_text())}
