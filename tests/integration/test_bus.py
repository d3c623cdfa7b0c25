"""The bus on loopback with real sockets: lockstep, outputs, commands, bad input."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from flightai.bus.wire import encode
from flightai.client import Client
from flightai.sched.health import Mode
from flightai.timebase import NS_PER_MS
from tests.integration.bus_harness import Running, bus_mission, running, wait_for

FRAME_NS = 10 * NS_PER_MS


def step(client: Client, t_ns: int, x: float | None = None) -> list[object]:
    """Send x (optional) and the tick for ``t_ns``; return messages up to its frame mark."""
    if x is not None:
        client.publish("x", t_ns, np.array([x], np.float32))
    client.tick(t_ns)
    seen = []
    while True:
        message = client.receive(15_000)
        assert message is not None, f"no frame mark for {t_ns}"
        seen.append(message)
        if message.topic == "frame" and message.t_ns == t_ns:
            return seen


@pytest.fixture
def runtime(tmp_path):  # type: ignore[no-untyped-def]
    with running(bus_mission(), tmp_path) as rt:
        yield rt


def _subscribed(rt: Running) -> Client:
    client = rt.client()
    client.subscribe(["out.", "frame", "health", "event"])
    # a SUB joins late: tick frame 0 until its mark comes through
    assert wait_for(lambda: _try_first_frame(client))
    return client


def _try_first_frame(client: Client) -> bool:
    client.tick(0)
    message = client.receive(50)
    while message is not None:
        if message.topic == "frame":
            return True
        message = client.receive(50)
    return False


def test_lockstep_sensor_stream_in_outputs_out(runtime: Running) -> None:
    client = _subscribed(runtime)
    outputs = []
    for k in range(1, 30):
        outputs += [m for m in step(client, k * FRAME_NS, x=float(k)) if m.topic == "out.t"]
    client.close()
    assert outputs, "no outputs published"
    for message in outputs:
        # t released at t_release reads the sample of that instant: y = x + 1 = t_release/10ms + 1
        assert message.fields["status"] == "ok"
        assert message.fields["task"] == "t"
        name, value = message.arrays[0]
        assert name == "y"
        assert float(value[0]) == message.fields["t_release_ns"] / FRAME_NS + 1
        assert message.t_ns == message.fields["t_release_ns"] + 2 * FRAME_NS
    assert [m.seq for m in outputs] == list(range(outputs[0].seq, outputs[0].seq + len(outputs)))
    assert runtime.executive.health.frames >= 30


def test_each_bad_input_is_rejected_by_reason_and_no_frame_is_missed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = bus_mission()
    data["bus"]["max_message_bytes"] = 1 << 20
    with running(data, tmp_path) as rt:
        _bad_inputs(rt)


def _bad_inputs(runtime: Running) -> None:
    client = _subscribed(runtime)
    good = np.array([1.0], np.float32)
    t = FRAME_NS
    client.send_raw([b"x", b"\xc1\xc1 not msgpack"])                          # malformed
    client.send_raw([b"x", msgpack.packb({"v": 1, "topic": "x", "seq": 0, "t_ns": 0,
                                          "arrays": []}) + b"x" * 5000])     # oversized header
    client.send_raw([b"x", msgpack.packb({"v": 9, "topic": "x", "seq": 0, "t_ns": 0,
                                          "arrays": []})])                    # bad version
    client.publish("x", t, np.array([1.0]))                                   # float64: bad dtype
    client.publish("x", t, np.zeros(2, np.float32))                           # bad shape
    frames = encode("x", 99, t, [("value", good)])
    client.send_raw([frames[0], frames[1], good.tobytes()[:3]])               # bad frame length
    client.publish("nope", t, good)                                           # unknown topic
    client.publish("x", t, good, seq=10)
    client.publish("x", t, good, seq=10)                                      # duplicate
    client.publish("x", t, good, seq=5)                                       # out of order
    big = np.zeros(2 * 1024 * 1024, np.uint8)
    client.send_raw(encode("x", 11, t, [("value", big)]))                     # oversized message
    marks = []
    for k in range(1, 12):
        marks += [m.t_ns for m in step(client, k * FRAME_NS) if m.topic == "frame"]
    assert marks == [k * FRAME_NS for k in range(1, 12)], "a frame was missed"
    status = client.status()
    client.close()
    assert status["bus"]["rejects"] == {
        "malformed": 1, "oversized": 2, "bad_version": 1, "bad_dtype": 1, "bad_shape": 1,
        "bad_frame_length": 1, "unknown_topic": 1, "duplicate": 1, "out_of_order": 1}
    assert status["frame_slips"] == 0


def test_stale_and_future_samples_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = bus_mission()
    data["signals"][0]["max_age_ms"] = 5
    with running(data, tmp_path) as rt:
        client = _subscribed(rt)
        step(client, FRAME_NS)
        client.publish("x", 0, np.ones(1, np.float32))             # 20 ms old at frame 20 ms
        client.publish("x", 5 * NS_PER_MS * 1000, np.ones(1, np.float32))  # 5 s ahead
        for k in range(5, 8):
            step(client, k * FRAME_NS)
        status = client.status()
        client.close()
    assert status["rejects"] == {"stale": 1}
    assert status["bus"]["rejects"] == {"future_timestamp": 1}


def test_commands_are_acknowledged_sequenced_and_applied(runtime: Running) -> None:
    client = _subscribed(runtime)
    ack = client.command("status")
    assert ack.accepted and ack.result["mode"] == "NOMINAL" and "tasks" in ack.result
    assert client.command("set_mode", mode="NOMINAL").reason == "invalid_state"
    safe = client.command("set_mode", mode="SAFE")
    assert safe.accepted
    step(client, FRAME_NS)
    assert runtime.executive.health.mode is Mode.SAFE
    assert client.command("set_mode", seq=safe.seq, mode="SAFE").reason == "duplicate"
    assert client.command("status", seq=1).reason == "out_of_order"
    assert client.command("fly").reason == "unknown_command"
    assert client.command("set_mode").reason == "bad_args"
    assert client.command("set_mode", mode="UPSIDE_DOWN").reason == "bad_args"
    assert client.command("restore_primary", task="nope").reason == "bad_args"
    assert client.command("restore_primary", task="t").accepted
    assert client.command("set_mode", mode="NOMINAL").accepted
    assert client.command("reset_counters").accepted
    step(client, 2 * FRAME_NS)
    assert runtime.executive.health.mode is Mode.NOMINAL
    assert runtime.executive.health.frames == 1
    other = runtime.client(name="other")      # its own sequence space
    assert other.command("status", seq=1).accepted
    other.close()
    assert client.command("stop").accepted
    client.tick(3 * FRAME_NS)
    runtime.thread.join(5)
    assert not runtime.thread.is_alive()
    client.close()


def test_health_is_published_at_its_fixed_rate(runtime: Running) -> None:
    client = _subscribed(runtime)
    health = []
    for k in range(1, 25):
        health += [m for m in step(client, k * FRAME_NS) if m.topic == "health"]
    client.close()
    assert [m.t_ns for m in health] == [k * FRAME_NS for k in range(1, 25)]
    assert health[-1].fields["health"]["mode"] == "NOMINAL"
    assert health[-1].fields["health"]["bus"]["secure"] is False


def test_a_missing_tick_raises_a_health_event_not_a_silent_stall(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = bus_mission()
    data["runtime"]["external"] = {"tick_timeout_ms": 30}
    with running(data, tmp_path) as rt:
        client = _subscribed(rt)
        step(client, FRAME_NS)
        assert wait_for(lambda: rt.executive.health.tick_timeouts > 0)
        events = []
        while (message := client.receive(200)) is not None:
            if message.topic == "event":
                events.append(message.fields["kind"])
        assert "tick_timeout" in events
        step(client, 2 * FRAME_NS)
        assert client.status()["mode"] == "SAFE"
        client.close()


def test_samples_beyond_the_buffer_budget_are_refused_as_overflow(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = bus_mission()
    data["bus"]["max_buffered_bytes"] = 1024
    with running(data, tmp_path) as rt:
        client = _subscribed(rt)
        ahead = 500 * NS_PER_MS  # stamped ahead: buffered until frame 500 ms
        for k in range(300):  # 4 bytes each: 256 fit in the budget
            client.publish("x", ahead + k, np.ones(1, np.float32))
        step(client, FRAME_NS)
        status = client.status()
        client.close()
    assert status["bus"]["rejects"] == {"overflow": 44}
