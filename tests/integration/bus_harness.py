"""An in-process runtime on loopback ZeroMQ, started and cleaned up by each test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flightai.bus.server import BusServer
from flightai.client import Client, ClientKeys
from flightai.config import parse_mission
from flightai.runtime import build_executive, make_clock
from flightai.sched.executive import Executive
from flightai.sched.io import MemorySink
from hil.ports import free_ports
from tests.conftest import base_mission


def bus_mission(**runtime: Any) -> dict[str, Any]:
    """``base_mission`` fed from the bus on free loopback ports, lockstep by default."""
    data = base_mission(**{"clock": "external", **runtime})
    del data["source"]
    sensors, outputs, commands = free_ports(3)
    data["bus"] = {"sensors": f"tcp://127.0.0.1:{sensors}",
                   "outputs": f"tcp://127.0.0.1:{outputs}",
                   "commands": f"tcp://127.0.0.1:{commands}",
                   "health_period_ms": 10}
    return data


@dataclass
class Running:
    """A runtime running in a thread, and what it published."""

    executive: Executive
    bus: BusServer
    memory: MemorySink
    thread: threading.Thread

    def client(self, keys: ClientKeys | None = None, name: str = "test",
               timeout_ms: int = 10_000) -> Client:
        bus = self.bus.config.bus
        assert bus is not None
        return Client(bus.sensors, bus.outputs, bus.commands, keys=keys, name=name,
                      timeout_ms=timeout_ms)


@contextmanager
def running(data: dict[str, Any], base_dir: Path) -> Iterator[Running]:
    """Start bus and executive; on exit stop both and check the thread ended."""
    config = parse_mission(data, base_dir)
    clock = make_clock(config)
    bus = BusServer(config, clock)
    memory = MemorySink()
    try:
        executive = build_executive(config, clock=clock, source=bus.input,
                                    sinks=[bus.sink, memory])
        bus.attach(executive)
        bus.start()
        thread = threading.Thread(target=executive.run, args=(None,), daemon=True)
        thread.start()
        try:
            yield Running(executive, bus, memory, thread)
        finally:
            executive.stop()
            thread.join(10)
        assert not thread.is_alive(), "the frame loop did not stop"
    finally:
        bus.close()


def wait_for(predicate: Any, timeout_s: float = 15.0) -> bool:
    """Poll ``predicate`` until true or timeout (tests never assert on how long it took).

    The bounds are generous: a loaded 2-core CI machine may take seconds for a CURVE
    handshake; they only decide how long a failing test takes to report.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return bool(predicate())
