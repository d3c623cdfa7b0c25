"""`flightai hil view`: a running runtime served live over Foxglove's WebSocket protocol.

The client is a minimal RFC 6455 client over a raw socket speaking the
``foxglove.sdk.v1`` subprotocol (serverInfo, advertise, subscribe, binary
message data), so the test depends on nothing but the standard library.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.bus_harness import bus_mission, running, wait_for

SUBPROTOCOL = "foxglove.sdk.v1"  # foxglove-sdk 0.30 refuses the older foxglove.websocket.v1
POLL_LIMIT_S = 60.0  # a bound on waiting, never an assertion on speed


class FoxgloveClient:
    """Just enough of a WebSocket client for a Foxglove server (text and binary frames)."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=POLL_LIMIT_S)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {SUBPROTOCOL}"
                           "\r\n\r\n").encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            assert chunk, "the server closed the connection during the handshake"
            response += chunk
        head, self.buffer = response.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in
                   (line.split(":", 1) for line in lines[1:])}
        assert lines[0].split()[1] == "101", lines[0]
        accept = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        assert headers["sec-websocket-accept"] == accept
        assert headers["sec-websocket-protocol"] == SUBPROTOCOL

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def receive(self) -> tuple[int, bytes]:
        """The next data message: (opcode 1 text or 2 binary, payload); answers pings."""
        opcode, payload = 0, b""
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if second & 0x80 else b""
            data = self._read(length)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            code = first & 0x0F
            if code == 0x9:  # ping
                self._send(0xA, data)
                continue
            if code == 0x8:
                raise ConnectionError("the server closed the connection")
            opcode = opcode or code
            payload += data
            if first & 0x80:
                return opcode, payload

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            head = struct.pack(">BB", 0x80 | opcode, 0x80 | length)
        elif length < 1 << 16:
            head = struct.pack(">BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            head = struct.pack(">BBQ", 0x80 | opcode, 0x80 | 127, length)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def send_json(self, value: Any) -> None:
        self._send(0x1, json.dumps(value).encode())

    def close(self) -> None:
        """Close handshake (the server answers with its close frame), then the socket."""
        try:
            self._send(0x8, struct.pack(">H", 1000))
            while True:
                self.receive()
        except (ConnectionError, OSError):
            pass
        finally:
            self.sock.close()


def _listening_addresses(port: int) -> set[str]:
    """The local IPv4 addresses listening on ``port`` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:  # LISTEN
            found.add(socket.inet_ntoa(struct.pack("<I", int(address, 16))))
    return found


@pytest.mark.slow
def test_hil_view_serves_a_running_runtime_over_foxglove_websocket(tmp_path) -> None:
    data = bus_mission(clock="wall")  # frames, health and out.t keep coming
    with running(data, tmp_path):
        view = subprocess.Popen(
            [sys.executable, "-m", "flightai", "hil", "view", "--outputs",
             data["bus"]["outputs"], "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            assert view.stdout is not None
            line = view.stdout.readline()
            assert "ws://127.0.0.1:" in line, line
            port = int(line.split("ws://127.0.0.1:")[1].split()[0])
            if Path("/proc/net/tcp").exists():  # loopback by default, nothing else
                assert _listening_addresses(port) == {"127.0.0.1"}
            client = FoxgloveClient("127.0.0.1", port)
            try:
                received = _subscribe_and_receive(client, {"health", "out.t", "/view/health",
                                                           "/view/y"})
            finally:
                client.close()
            view.send_signal(signal.SIGTERM)
            out, err = view.communicate(timeout=POLL_LIMIT_S)
        finally:
            if view.poll() is None:
                view.kill()
                view.wait()
            for pipe in (view.stdout, view.stderr):  # communicate() may not have run
                if pipe is not None:
                    pipe.close()
    assert view.returncode == 0, err
    assert "flightai hil view: stopped after" in out and "Traceback" not in err
    for topic in received:
        assert received[topic][0]["encoding"] == "json"
        assert received[topic][0]["schemaEncoding"] == "jsonschema"
        json.loads(received[topic][0]["schema"])  # a JSON schema
    received = {topic: json.loads(payload) for topic, (_, payload) in received.items()}
    health = received["health"]
    assert health["topic"] == "health" and health["health"]["frames"] > 0
    assert received["out.t"]["arrays"]["y"]["dtype"] == "float32"
    assert received["out.t"]["status"] in ("ok", "held")
    assert received["/view/health"]["frames"] > 0 and received["/view/health"]["t_s"] >= 0
    assert len(received["/view/y"]["value"]) == 1 and received["/view/y"]["t_ns"] > 0


def _subscribe_and_receive(client: FoxgloveClient,
                           topics: set[str]) -> dict[str, tuple[dict[str, Any], bytes]]:
    """Wait for ``topics`` to be advertised, subscribe, and return a message of each.

    Returns: per topic, its advertised channel and the payload of one message.
    """
    channels: dict[str, dict[str, Any]] = {}
    server_info: dict[str, Any] = {}
    deadline = time.monotonic() + POLL_LIMIT_S
    while not topics <= set(channels) and time.monotonic() < deadline:
        opcode, payload = client.receive()
        if opcode == 1:
            op = json.loads(payload)
            if op["op"] == "serverInfo":
                server_info = op
            elif op["op"] == "advertise":
                channels.update({c["topic"]: c for c in op["channels"]})
    assert server_info.get("name") == "flightai"
    assert topics <= set(channels), f"advertised: {sorted(channels)}"
    by_id = {i: channels[topic] for i, topic in enumerate(sorted(topics), 1)}
    client.send_json({"op": "subscribe", "subscriptions": [
        {"id": i, "channelId": c["id"]} for i, c in by_id.items()]})
    received: dict[str, tuple[dict[str, Any], bytes]] = {}

    def one() -> bool:
        opcode, payload = client.receive()
        if opcode == 2 and payload[0] == 0x01:  # message data
            subscription, log_time_ns = struct.unpack_from("<IQ", payload, 1)
            assert log_time_ns > 0
            channel = by_id[subscription]
            received.setdefault(channel["topic"], (channel, payload[13:]))
        return set(received) == topics

    assert wait_for(one, timeout_s=POLL_LIMIT_S), f"received: {sorted(received)}"
    return received


@pytest.mark.slow
def test_demo_view_serves_the_flight_with_what_the_stub_sends(tmp_path) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "flightai", "demo", "--nominal", "--out", str(tmp_path),
         "--view", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert demo.stdout is not None
        port = None
        for line in demo.stdout:
            if "live view on ws://127.0.0.1:" in line:
                port = int(line.split("ws://127.0.0.1:")[1].split()[0])
                break
        assert port is not None, "the demo never said where its live view is"
        client = FoxgloveClient("127.0.0.1", port)
        try:  # the camera is a sensor sample: only the stub's on_send can show it
            received = _subscribe_and_receive(client, {"/view/camera/image",
                                                       "/view/nav/state/pose", "camera.image"})
        finally:
            client.close()
        out, err = demo.communicate(timeout=300)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        for pipe in (demo.stdout, demo.stderr):  # communicate() may not have run
            if pipe is not None:
                pipe.close()
    assert demo.returncode == 0, err
    assert "SUCCESS" in out
    channel, _ = received["/view/camera/image"]
    assert (channel["encoding"], channel["schemaName"], channel["schemaEncoding"]) == (
        "protobuf", "foxglove.RawImage", "protobuf")
    assert received["/view/nav/state/pose"][0]["schemaName"] == "foxglove.PoseInFrame"
    camera = json.loads(received["camera.image"][1])
    assert camera["arrays"]["value"] == {"dtype": "float32", "shape": [256, 256]}


def test_hil_view_refuses_a_taken_port_and_a_bad_endpoint() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run([sys.executable, "-m", "flightai", "hil", "view", "--outputs",
                               "tcp://127.0.0.1:5551", "--port", str(port)],
                              capture_output=True, text=True, timeout=POLL_LIMIT_S)
    assert busy.returncode == 1
    assert f"cannot serve on 127.0.0.1:{port}" in busy.stderr and "Traceback" not in busy.stderr
    bad = subprocess.run([sys.executable, "-m", "flightai", "hil", "view", "--outputs",
                          "tcp://nowhere", "--port", "0"],
                         capture_output=True, text=True, timeout=POLL_LIMIT_S)
    assert bad.returncode == 1
    assert "--outputs tcp://nowhere" in bad.stderr and "Traceback" not in bad.stderr
