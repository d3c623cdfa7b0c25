"""CurveZMQ on the bus: allow-list, command classes, fail-closed start and authenticator death."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zmq.auth

from flightai.bus.server import BusServer
from flightai.client import ClientKeys
from flightai.config import parse_mission
from flightai.errors import BusError
from flightai.runtime import make_clock
from flightai.sched.health import Mode
from flightai.timebase import NS_PER_MS
from tests.integration.bus_harness import bus_mission, running, wait_for


def _keys(directory: Path) -> dict[str, Path]:
    paths = {}
    for name in ("server", "fsw", "viewer", "stranger"):
        _, secret = zmq.auth.create_certificates(directory, name)
        paths[name] = Path(secret)
    return paths


def _public(path: Path) -> str:
    public, _ = zmq.auth.load_certificate(path)
    return public.decode()


def _client_keys(keys: dict[str, Path], who: str) -> ClientKeys:
    return ClientKeys.from_files(keys["server"].with_suffix(".key"), keys[who])


def _secure_mission(keys: dict[str, Path]) -> dict[str, object]:
    data = bus_mission()
    data["bus"]["curve"] = {  # type: ignore[index]
        "server_secret_key_file": str(keys["server"]),
        "clients": [
            {"name": "fsw", "public_key": _public(keys["fsw"]),
             "commands": ["read", "control", "admin"]},
            {"name": "viewer", "public_key": _public(keys["viewer"])},
        ]}
    return data


def test_allowed_keys_work_and_classes_are_enforced_unknown_keys_get_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    keys = _keys(tmp_path)
    with running(_secure_mission(keys), tmp_path) as rt:
        fsw = rt.client(_client_keys(keys, "fsw"), name="fsw")
        assert fsw.command("status").accepted
        viewer = rt.client(_client_keys(keys, "viewer"), name="viewer")
        assert viewer.command("status").accepted
        refused = viewer.command("set_mode", mode="SAFE")
        assert (refused.status, refused.reason) == ("rejected", "forbidden")

        stranger = rt.client(_client_keys(keys, "stranger"), name="stranger", timeout_ms=300)
        received_before = rt.bus.checks.received
        for k in range(20):
            stranger.publish("x", k, np.ones(1, np.float32))
        with pytest.raises(BusError, match="no acknowledgement"):
            stranger.command("status")
        fsw.publish("x", 0, np.ones(1, np.float32))
        assert wait_for(lambda: rt.bus.checks.received == received_before + 1)
        assert rt.bus.checks.rejects == {}
        status = fsw.status()
        assert status["bus"]["secure"] is True
        for client in (fsw, viewer, stranger):
            client.close()


def test_killing_the_authenticator_enters_safe_and_accepts_no_new_peer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    keys = _keys(tmp_path)
    with running(_secure_mission(keys), tmp_path) as rt:
        fsw = rt.client(_client_keys(keys, "fsw"), name="fsw")
        assert fsw.command("status").accepted
        fsw.tick(0)  # connects the sensors socket while the authenticator lives
        assert wait_for(lambda: rt.executive.health.frames == 1)
        assert rt.bus.security is not None
        rt.bus.security._auth.stop()  # simulate the thread dying
        assert wait_for(lambda: rt.bus.security is not None and rt.bus.security.dead)
        fsw.tick(10 * NS_PER_MS)
        assert wait_for(lambda: rt.executive.health.mode is Mode.SAFE)
        safe_event = [e for e in rt.executive.health.events.recent if e.kind == "safe_entered"]
        assert safe_event and "authenticator" in safe_event[0].detail
        late = rt.client(_client_keys(keys, "fsw"), name="late", timeout_ms=300)
        with pytest.raises(BusError):
            late.command("status")
        status = fsw.status()  # a peer authenticated before the death flies on, in SAFE
        assert status["mode"] == "SAFE" and status["bus"]["authenticator_alive"] is False
        late.close()
        fsw.close()


def _port_free(endpoint: str) -> bool:
    port = int(endpoint.rsplit(":", 1)[1])
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_no_socket_is_bound_when_security_cannot_start(tmp_path) -> None:  # type: ignore[no-untyped-def]
    keys = _keys(tmp_path)
    data = _secure_mission(keys)
    data["bus"]["curve"]["server_secret_key_file"] = str(tmp_path / "missing")  # type: ignore[index]
    config = parse_mission(data, tmp_path)
    with pytest.raises(BusError, match="cannot read CURVE key file"):
        BusServer(config, make_clock(config))
    assert config.bus is not None
    assert all(_port_free(e) for e in (config.bus.sensors, config.bus.outputs,
                                       config.bus.commands))
    public_only = _secure_mission(keys)
    public_only["bus"]["curve"]["server_secret_key_file"] = str(  # type: ignore[index]
        keys["server"].with_suffix(".key"))
    config = parse_mission(public_only, tmp_path)
    with pytest.raises(BusError, match="no secret key"):
        BusServer(config, make_clock(config))


def test_keys_generate_writes_a_private_secret_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = subprocess.run([sys.executable, "-m", "flightai", "keys", "generate",
                             str(tmp_path / "keys"), "fsw"], capture_output=True, text=True,
                            check=True)
    secret = tmp_path / "keys" / "fsw.key_secret"
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    public, secret_key = zmq.auth.load_certificate(secret)
    assert secret_key is not None and public.decode() in result.stdout
