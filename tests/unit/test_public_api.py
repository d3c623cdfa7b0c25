"""The public surface is small and pinned; the flight package stays light."""

from __future__ import annotations

import subprocess
import sys

import flightai

EXPORTED = {
    "Clock", "ConfigError", "Executive", "ExternalClock", "FastClock", "FlightaiError",
    "InputSource", "MissionConfig", "ModelError", "ModelHashError", "Overrun", "OutputSink",
    "Publication", "Sample", "ScheduleError", "Task", "WallClock", "__version__",
    "build_executive", "load_mission",
}


def test_exported_members_are_pinned() -> None:
    assert set(flightai.__all__) == EXPORTED
    for name in flightai.__all__:
        assert hasattr(flightai, name)


def test_import_flightai_loads_no_ground_side_package() -> None:
    code = ("import sys, flightai, flightai.cli; "
            "bad = [m for m in ('hil', 'mcap', 'dask', 'matplotlib', 'torch', 'onnx') "
            "if m in sys.modules]; print(bad)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_flight_package_never_imports_hil() -> None:
    from pathlib import Path

    root = Path(flightai.__file__).parent
    for path in root.rglob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            assert not stripped.startswith(("import hil", "from hil")), f"{path}: {line}"
