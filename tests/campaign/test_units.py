"""Campaign pieces without a cluster: seeds and keys, statistics, the store, the verdict rule."""

from __future__ import annotations

import dataclasses
import json
import math
import shlex
from pathlib import Path

import numpy as np
import pytest

from flightai.config import load_mission
from flightai.config.overrides import apply_overrides
from hil.campaign import worker
from hil.campaign.cases import CampaignSpec, case_seed
from hil.campaign.qualify import CRITERIA, candidate_overrides, judge, overall
from hil.campaign.stats import clopper_pearson, mcnemar_exact, sign_test_interval
from hil.campaign.store import ResultsStore, StoreMismatch
from tests.campaign.conftest import L2


def test_case_seeds_come_from_seed_sequence_spawn_and_never_repeat() -> None:
    children = np.random.SeedSequence(5).spawn(3)
    for i, child in enumerate(children):
        words = child.generate_state(4, dtype=np.uint32)
        assert case_seed(5, i) == int.from_bytes(b"".join(
            int(w).to_bytes(4, "big") for w in words), "big")
    spec = CampaignSpec.from_file(L2, entropy=5, cases=200)
    cases = spec.all_cases()
    assert len({c.seed for c in cases}) == len({c.key for c in cases}) == 200
    assert spec.case(2).seed == CampaignSpec.from_file(L2, entropy=5, cases=3).case(2).seed


def test_a_case_key_names_what_is_flown() -> None:
    base = CampaignSpec.from_file(L2, entropy=5, cases=2)
    assert base.case(1).key == CampaignSpec.from_file(L2, entropy=5, cases=9).case(1).key
    others = [CampaignSpec.from_file(L2, entropy=6, cases=2),
              CampaignSpec.from_file(L2, entropy=5, cases=2, stress_sun=True),
              CampaignSpec.from_file(L2, entropy=5, cases=2, overrides=["tasks.nav.budget_us=500"])]
    assert len({s.case(1).key for s in [base, *others]}) == 4


def test_the_replay_command_names_every_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(L2.parents[1])
    spec = CampaignSpec.from_file(Path(L2.parent.name) / L2.name, entropy=5, cases=2,
                                  stress_sun=True, overrides=['models.gnet.file="/x y/g.onnx"'])
    words = shlex.split(spec.case(1).replay_command())
    assert words[:3] == ["flightai", "hil", "case"]
    assert words[words.index("--mission") + 1] == str(L2.resolve())  # works from any folder
    assert words[words.index("--seed-entropy") + 1] == "5"
    assert words[words.index("--spawn-key") + 1] == "1"
    assert "--stress-sun" in words
    assert words[words.index("--set") + 1] == 'models.gnet.file="/x y/g.onnx"'


def test_clopper_pearson_matches_known_intervals() -> None:
    low, high = clopper_pearson(50, 50)
    assert low == pytest.approx(0.025 ** (1 / 50), abs=1e-9) and high == 1.0
    low, high = clopper_pearson(0, 10)
    assert low == 0.0 and high == pytest.approx(1 - 0.025 ** (1 / 10), abs=1e-9)
    low, high = clopper_pearson(7, 10)  # R: binom.test(7, 10)$conf.int
    assert (low, high) == (pytest.approx(0.3475471, abs=1e-6), pytest.approx(0.9332605, abs=1e-6))


def test_mcnemar_is_exact() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(6, 0) == pytest.approx(2 / 64)
    assert mcnemar_exact(5, 0) == pytest.approx(2 / 32)
    assert mcnemar_exact(3, 1) == pytest.approx(2 * 5 / 16)


def test_the_sign_test_interval_needs_six_pairs_at_95_percent() -> None:
    assert sign_test_interval([1.0] * 5) == (None, None)
    assert sign_test_interval([3.0, 1.0, 2.0, 6.0, 5.0, 4.0]) == (1.0, 6.0)
    low, high = sign_test_interval(list(range(20)))  # k = 6 for n = 20
    assert (low, high) == (5, 14)
    assert 1 - 2 * sum(math.comb(20, i) for i in range(6)) / 2**20 >= 0.95


def _record(**fields: float) -> dict[str, float]:
    base = {c.field: 1.0 for c in CRITERIA}
    base["success"] = base["learned_guidance"] = True
    return {**base, **fields}


def test_the_verdict_rule() -> None:
    base = [_record() for _ in range(6)]
    same = judge(CRITERIA[2], base, base)
    assert same["verdict"] == "equivalent" and same["ci95"] == [0.0, 0.0]
    far = judge(CRITERIA[2], base, [_record(landing_error_m=5.0) for _ in range(6)])
    assert far["verdict"] == "worse"
    near = judge(CRITERIA[2], base, [_record(landing_error_m=-2.0 + i) for i in range(6)])
    assert near["verdict"] == "inconclusive"  # interval [-3, 2] crosses -2
    latched = judge(CRITERIA[1], base, [_record(learned_guidance=False) for _ in range(6)])
    assert latched["verdict"] == "worse" and latched["p_value"] == pytest.approx(1 / 32)
    few = judge(CRITERIA[1], base[:5], [_record(learned_guidance=False) for _ in range(5)])
    assert few["verdict"] == "no difference"
    assert overall(["equivalent", "no difference"]) == "equivalent"
    assert overall(["better", "inconclusive"]) == "inconclusive"
    assert overall(["better", "equivalent", "no difference"]) == "better"
    assert overall(["better", "worse"]) == "worse"


def test_the_store_refuses_another_campaign_and_drops_torn_writes(tmp_path: Path) -> None:
    spec = CampaignSpec.from_file(L2, entropy=5, cases=2)
    store = ResultsStore(tmp_path, spec.manifest())
    store.put({"key": spec.case(0).key, "x": 1})
    (tmp_path / "cases" / ".torn.json.123.tmp").write_text('{"key": ')
    again = ResultsStore(tmp_path, CampaignSpec.from_file(L2, entropy=5, cases=7).manifest())
    assert again.done() == {spec.case(0).key}
    assert not list((tmp_path / "cases").glob(".*"))
    assert json.loads((tmp_path / "cases" / f"{spec.case(0).key}.json").read_text())["x"] == 1
    with pytest.raises(StoreMismatch, match="entropy: stored 5, this run 6"):
        ResultsStore(tmp_path, CampaignSpec.from_file(L2, entropy=6, cases=2).manifest())


@pytest.mark.parametrize("text", ["{torn", "[1, 2]"])
def test_a_folder_whose_manifest_is_not_one_is_refused(tmp_path: Path, text: str) -> None:
    (tmp_path / "campaign.json").write_text(text)
    manifest = CampaignSpec.from_file(L2, entropy=5, cases=2).manifest()
    with pytest.raises(StoreMismatch, match=r"campaign\.json: stored .*this run 'a campaign"):
        ResultsStore(tmp_path, manifest)
    assert (tmp_path / "campaign.json").read_text() == text


def test_a_candidate_path_with_quotes_survives_the_override(tmp_path: Path) -> None:
    candidate = tmp_path / 'odd "name" \\ here.onnx'
    candidate.write_bytes(b"model bytes")
    items = candidate_overrides(L2, "guidance", candidate)
    name = items[0].split(".")[1]
    data = apply_overrides({"models": [{"name": name}]}, items)
    assert data["models"][0]["file"] == str(candidate.resolve())


def test_a_worker_keeps_the_last_two_configurations_of_a_task_loaded() -> None:
    config = load_mission(L2)
    model = next(m for m in config.models if m.name == "gnet")
    one, two, three = (dataclasses.replace(model, intra_op_threads=n) for n in (1, 2, 3))
    worker._SESSIONS.clear()
    try:
        first = worker._cached_model("gnet", one)
        second = worker._cached_model("gnet", two)
        assert worker._cached_model("gnet", one) is first  # cached; now the most recent
        worker._cached_model("gnet", three)  # drops the least recent: two
        assert len(worker._SESSIONS) == worker.KEEP_PER_TASK
        assert worker._cached_model("gnet", one) is first
        assert worker._cached_model("gnet", two) is not second  # loaded again
    finally:
        worker._SESSIONS.clear()
