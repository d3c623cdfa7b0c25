"""Campaign and case identity: seeds spawned from one ``SeedSequence``, keys that cannot merge.

Case ``i`` of a campaign with entropy ``S`` is ``SeedSequence(S).spawn(n)[i]``,
i.e. ``SeedSequence(S, spawn_key=(i,))`` whatever ``n``: growing a campaign
keeps its first cases. The case's integer seed for
:func:`hil.ltd1.dispersions.draw_case` is 128 bits generated from that child,
so two cases share a seed only by a hash collision (checked at spawn). A case's
key names the campaign (a hash of everything that decides what is flown) and
the index, and is also its Dask key and its file name in the results store.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SEED_WORDS = 4
"""32-bit words of a case seed (128 bits)."""


def sha256_text(text: str) -> str:
    """SHA-256 of a text's UTF-8 bytes, hex."""
    return hashlib.sha256(text.encode()).hexdigest()


def case_seed(entropy: int, index: int) -> int:
    """The ``draw_case`` seed of case ``index``: 128 bits of ``SeedSequence(entropy).spawn``."""
    child = np.random.SeedSequence(entropy, spawn_key=(index,))
    seed = 0
    for word in child.generate_state(SEED_WORDS, dtype=np.uint32):
        seed = seed << 32 | int(word)
    return seed


@dataclass(frozen=True)
class CampaignSpec:
    """What a campaign flies: one mission text, overrides, dispersion and seed entropy.

    Attributes:
        mission: the mission file's absolute path (for the replay command, which
            then works from any folder).
        mission_text: its text, read once by the driver and sent to the workers.
        base_dir: absolute folder relative model and code paths resolve from
            (it must exist on every worker).
        overrides: ``key.path=value`` items applied to the text.
        entropy: the root ``SeedSequence`` entropy.
        cases: how many cases.
        stress_sun: the stress sun dispersion.
        nominal: zero dispersions (noise stays seeded).
    """

    mission: str
    mission_text: str
    base_dir: str
    overrides: tuple[str, ...] = ()
    entropy: int = 0
    cases: int = 1
    stress_sun: bool = False
    nominal: bool = False

    @classmethod
    def from_file(cls, mission: str | Path, *, overrides: Sequence[str] = (), entropy: int = 0,
                  cases: int = 1, stress_sun: bool = False, nominal: bool = False,
                  ) -> CampaignSpec:
        """Read the mission file once; every case flies this text."""
        path = Path(mission).resolve()
        return cls(str(path), path.read_text(encoding="utf-8"), str(path.parent),
                   tuple(overrides), entropy, cases, stress_sun, nominal)

    def config_identity(self) -> dict[str, Any]:
        """What decides the flown configuration: text hash, overrides, dispersion switches."""
        return {"mission_sha256": sha256_text(self.mission_text), "base_dir": self.base_dir,
                "overrides": list(self.overrides), "stress_sun": self.stress_sun,
                "nominal": self.nominal}

    @property
    def campaign_id(self) -> str:
        """Hash of the configuration identity and the entropy (not of the case count)."""
        identity = {**self.config_identity(), "entropy": self.entropy}
        return sha256_text(json.dumps(identity, sort_keys=True))

    def case(self, index: int) -> CaseSpec:
        """Case ``index`` of this campaign."""
        return CaseSpec(self, index, case_seed(self.entropy, index))

    def all_cases(self) -> list[CaseSpec]:
        """Every case, in index order.

        Raises:
            ValueError: two cases drew the same 128-bit seed (never expected).
        """
        specs = [self.case(i) for i in range(self.cases)]
        if len({c.seed for c in specs}) != len(specs):
            raise ValueError(f"campaign {self.campaign_id[:12]}: two cases share a seed")
        return specs

    def manifest(self) -> dict[str, Any]:
        """The campaign's description, as the results store keeps it."""
        return {"campaign_id": self.campaign_id, "mission": self.mission,
                **self.config_identity(), "entropy": self.entropy, "cases": self.cases}


@dataclass(frozen=True)
class CaseSpec:
    """One case: its campaign, index (spawn key) and derived seed."""

    campaign: CampaignSpec
    index: int
    seed: int

    @property
    def key(self) -> str:
        """Unique name: campaign hash prefix and index (Dask key, store file name)."""
        return f"case-{self.campaign.campaign_id[:16]}-{self.index:06d}"

    def seed_record(self) -> dict[str, Any]:
        """How the seed was made, enough to make it again."""
        return {"entropy": self.campaign.entropy, "spawn_key": [self.index],
                "case_seed": self.seed}

    def replay_command(self) -> str:
        """One shell command that flies this case alone (same record, same digest)."""
        c = self.campaign
        words = ["flightai", "hil", "case", "--mission", c.mission,
                 "--seed-entropy", str(c.entropy), "--spawn-key", str(self.index)]
        words += ["--stress-sun"] if c.stress_sun else []
        words += ["--nominal"] if c.nominal else []
        for item in c.overrides:
            words += ["--set", item]
        return shlex.join(words)
