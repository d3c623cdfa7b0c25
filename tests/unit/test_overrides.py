"""``--set key.path=value`` overrides: applied before validation, errors name the path."""

from __future__ import annotations

import pytest

from flightai.config.overrides import apply_overrides
from flightai.errors import ConfigError

DOC = {"runtime": {"workers": 2}, "tasks": [{"name": "nav", "params": {"seed": 1}},
                                            {"name": "guidance"}]}


def test_values_are_read_as_toml_and_the_original_is_untouched() -> None:
    out = apply_overrides(DOC, ["runtime.workers=4", "tasks.nav.params.seed=9",
                                "tasks.1.period_ms=20", "bus.sensors=tcp://127.0.0.1:6000",
                                'mission.name="x"', "tasks.0.params.v=[1.5, 2]"])
    assert out["runtime"]["workers"] == 4
    assert out["tasks"][0]["params"] == {"seed": 9, "v": [1.5, 2]}
    assert out["tasks"][1]["period_ms"] == 20
    assert out["bus"]["sensors"] == "tcp://127.0.0.1:6000"
    assert out["mission"]["name"] == "x"
    assert DOC["runtime"]["workers"] == 2 and DOC["tasks"][0]["params"] == {"seed": 1}


@pytest.mark.parametrize(("item", "message"), [
    ("runtime.workers", "--set runtime.workers: expected key.path=value"),
    ("tasks.radar.params.x=1", "--set tasks.radar: expected an index or the name of an element"),
    ("runtime.workers.x=1", "--set runtime.workers.x: expected a path through tables"),
    ("runtime.workers.x.y=1", "--set runtime.workers.x: expected a table or an array of tables"),
    ("tasks.x=1", "--set tasks.x: expected a path through tables"),
])
def test_bad_overrides_name_the_path(item: str, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + message.replace(".", r"\.")):
        apply_overrides(DOC, [item])


def test_an_override_is_validated_like_the_file(example_dir) -> None:
    from flightai.config.loader import load_mission

    with pytest.raises(ConfigError, match=r"runtime\.workers: expected"):
        load_mission(example_dir / "mission.toml", ["runtime.workers=0"])
    config = load_mission(example_dir / "mission.toml", ["runtime.workers=3"])
    assert config.runtime.workers == 3
