"""The flight-software stub: flies the simulator against a runtime over the real bus.

It plays the flight computer's software in lockstep: for each minor frame it
advances the truth, sends every sensor measurement taken by then (each
stamped with its measurement time), sends the tick, and waits for the
runtime's frame mark; the thrust command published in that frame is applied
from its publication instant plus the command latency. This is the order the
in-process loop (``hil.ltd1.loop``) follows, so both publish the same bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from flightai.bus.inbound import TICK_TOPIC
from flightai.bus.outbound import FRAME_TOPIC, OUTPUT_PREFIX
from flightai.bus.wire import Message, encode
from flightai.client import Client
from flightai.errors import BusError
from flightai.sched.io import Publication, Sample
from flightai.timebase import NS_PER_MS, NS_PER_S
from hil.ltd1.constants import MAX_MISSION_NS
from hil.ltd1.criteria import FlightRecord
from hil.ltd1.loop import Plant


class StubError(RuntimeError):
    """The runtime did not answer as the lockstep protocol requires."""


def wait_ready(client: Client, timeout_s: float = 120.0,
               alive: Callable[[], bool] = lambda: True) -> Mapping[str, Any]:
    """Poll ``status`` until the runtime has warmed up (READY, or NOMINAL waiting for ticks).

    Args:
        client: connected to the runtime.
        timeout_s: how long to wait (wall time).
        alive: False once the runtime is known to be gone (a child process that
            exited): then give up at once instead of waiting out the timeout.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if not alive():
            raise StubError("the runtime exited before it was READY")
        try:
            status = client.status()
        except BusError:
            status = {}
        if status.get("mode") in ("READY", "NOMINAL"):
            return status
        if time.monotonic() > deadline:
            raise StubError(f"the runtime did not answer READY within {timeout_s:.0f} s")
        time.sleep(0.1)


class FlightSoftwareStub:
    """Sends sensors and ticks, applies thrust commands, until touchdown.

    Args:
        plant: the simulated vehicle (shared with the in-process loop).
        client: connected to the runtime's three endpoints.
        minor_frame_ns: the runtime's minor frame: one tick each.
        real_time: pace ticks against the wall clock instead of as fast as the
            runtime answers.
        frame_timeout_s: how long to wait for a frame mark before giving up.
        on_send: called with the frames of every sample and tick sent (a recorder's
            ``record_sent``): the bytes :func:`~flightai.bus.wire.encode` writes, which
            are those the client sends.
        alive: False once the runtime is known to be gone (see :func:`wait_ready`).
        outbound: turns each frame's samples into the multipart messages to send
            instead (a fault injector's ``messages_for``); they are sent as they are.
    """

    def __init__(self, plant: Plant, client: Client, minor_frame_ns: int, *,
                 real_time: bool = False, frame_timeout_s: float = 10.0,
                 on_send: Callable[[list[Any]], object] | None = None,
                 alive: Callable[[], bool] = lambda: True,
                 outbound: Callable[[int, list[Sample]], list[list[bytes]]] | None = None
                 ) -> None:
        self.plant = plant
        self.client = client
        self.minor_frame_ns = minor_frame_ns
        self.real_time = real_time
        self.frame_timeout_s = frame_timeout_s
        self.final_status: Mapping[str, Any] = {}
        self.on_send = on_send
        self.alive = alive
        self.outbound = outbound

    def fly(self) -> None:
        """Fly to touchdown (or the time limit), then read the runtime's status and stop it."""
        self.client.subscribe([OUTPUT_PREFIX, FRAME_TOPIC])
        wait_ready(self.client, alive=self.alive)
        time.sleep(0.3)  # the subscription reaches the publisher before the first frame
        sim = self.plant.sim
        wall_start = time.monotonic_ns()
        t_ns = 0
        tick_seq = 0
        on_send = self.on_send
        while True:
            samples = self.plant.poll(t_ns)
            if self.outbound is not None:
                for frames in self.outbound(t_ns, samples):
                    self.client.send_raw(frames)
                    if on_send is not None:
                        on_send(frames)
            else:
                for sample in samples:
                    seq = self.client.publish(sample.signal, sample.t_ns, sample.value)
                    if on_send is not None:
                        on_send(encode(sample.signal, seq, sample.t_ns,
                                       [("value", sample.value)]))
            if self.real_time:
                lag_ns = wall_start + t_ns - time.monotonic_ns()
                if lag_ns > 0:
                    time.sleep(lag_ns / NS_PER_S)
            self.client.tick(t_ns)
            if on_send is not None:
                on_send(encode(TICK_TOPIC, tick_seq, t_ns))
            tick_seq += 1
            self._await_frame(t_ns)
            if sim.done or t_ns >= MAX_MISSION_NS:
                break
            t_ns += self.minor_frame_ns
        self.final_status = self.client.status()
        ack = self.client.command("stop")
        if not ack.accepted:
            raise StubError(f"stop refused: {ack.reason}: {ack.detail}")

    def _await_frame(self, t_ns: int) -> None:
        deadline = time.monotonic() + self.frame_timeout_s
        while time.monotonic() < deadline:
            message = self.client.receive(timeout_ms=100)
            if message is None:
                continue
            if message.topic == FRAME_TOPIC and message.t_ns >= t_ns:
                return
            if message.topic.startswith(OUTPUT_PREFIX):
                self.plant.publish(_publication(message))
        raise StubError(f"no frame mark for t = {t_ns / NS_PER_MS:.0f} ms within "
                        f"{self.frame_timeout_s:.0f} s: is the runtime on the external clock?")

    def record(self, seed: int, hard: frozenset[str]) -> FlightRecord:
        """The record of the flight, with the runtime's own counters."""
        tasks = self.final_status.get("tasks", {})
        overruns = {name: int(t.get("overruns", 0)) for name, t in tasks.items()}
        rejects = dict(self.final_status.get("rejects", {}))
        bus = self.final_status.get("bus", {})
        for reason, count in (bus.get("rejects") or {}).items():
            rejects[reason] = rejects.get(reason, 0) + int(count)
        return self.plant.record(seed, overruns, hard, rejects)


def _publication(message: Message) -> Publication:
    fields = message.fields
    return Publication(message.t_ns, str(fields["task"]), int(fields["t_release_ns"]),
                       tuple(message.arrays), str(fields["status"]))
