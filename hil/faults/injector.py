"""Sensor and transport faults on what a flight-software stub sends, frame by frame.

:meth:`Injector.messages_for` takes the samples a stub would send before the
tick of frame ``t`` and returns the multipart messages it sends instead, in
order, exactly as :func:`~flightai.bus.wire.encode` writes them:

1. **sensor faults** act on each sample as measured (its ``t_ns`` in the
   window): ``dropout`` (not sent), ``stuck`` (the value before the window, or
   ``params.value``), ``bias`` (+ ``params.offset``), ``noise`` (+ N(0,
   ``params.sigma``) per element), ``delay`` (held and sent at the first frame
   at or after ``t_ns + delay_ms``), ``out_of_order`` (held until a newer
   sample of the signal has been sent, then sent in the next frame: the
   runtime has already taken the newer one);
2. each sample is **encoded** with the next sequence number of its topic, as
   :meth:`flightai.client.Client.publish` numbers them;
3. **transport faults** act on each message sent at a frame in the window:
   ``drop`` (not sent: a sequence gap), ``duplicate`` (sent twice: same
   ``seq``), ``reorder`` (held and sent right after the next message of its
   topic: a lower ``seq`` after a higher one), ``corrupt`` (bytes broken on
   the wire, one of ``params.modes`` at random: see :class:`Corruption`).

Every draw comes from the fault's own stream, one uniform per candidate (and
the noise or the mode when it acts), and every application is logged.
Ticks are never faulted: a lockstep runtime would wait for a lost one forever.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from flightai.bus.wire import encode
from flightai.config.schema import MissionConfig
from flightai.sched.io import Sample
from hil.faults.log import Applied
from hil.faults.plan import Corruption, Fault, FaultPlan, Kind, Layer

Frames = list[bytes]
_OTHER_DTYPE = {"float64": np.float32, "float32": np.float64, "float16": np.float32}


@dataclass
class _Held:
    """A sample held back by a delay or out-of-order fault."""

    sample: Sample
    due_ns: int | None  # None: waiting for a newer sample of its signal to be sent


@dataclass(frozen=True)
class _Outgoing:
    """One encoded message and the sample it carries."""

    sample: Sample
    seq: int
    frames: Frames


class Injector:
    """Applies a plan's sensor and transport faults (see the module's description).

    Args:
        plan: the fault plan (its model faults are ignored here).
        config: the mission (targets are checked against it).
        on_applied: called with each application as it happens (a recorder).
    """

    def __init__(self, plan: FaultPlan, config: MissionConfig,
                 on_applied: Callable[[Applied], object] | None = None) -> None:
        plan.check_against(config)
        self.log: list[Applied] = []
        self._on_applied = on_applied
        self._sensor = [(f, f.rng()) for f in plan.of(Layer.SENSOR)]
        self._transport = [(f, f.rng()) for f in plan.of(Layer.TRANSPORT)]
        self._last_value: dict[str, npt.NDArray[Any]] = {}
        self._stuck: dict[str, npt.NDArray[Any]] = {}
        self._held: list[_Held] = []
        self._seq: dict[str, int] = {}
        self._reordered: dict[tuple[str, str], _Outgoing] = {}
        self._t_ns = 0

    def messages_for(self, t_ns: int, samples: list[Sample]) -> list[Frames]:
        """The messages to send before the tick of frame ``t_ns``, given the samples due."""
        self._t_ns = t_ns
        sent = [h.sample for h in self._held if h.due_ns is not None and h.due_ns <= t_ns]
        self._held = [h for h in self._held if h.due_ns is None or h.due_ns > t_ns]
        for sample in samples:
            faulted = self._sensor_faults(sample)
            if faulted is not None:
                sent.append(faulted)
        for sample in sent:
            for held in self._held:
                if (held.due_ns is None and held.sample.signal == sample.signal
                        and held.sample.t_ns < sample.t_ns):
                    held.due_ns = t_ns + 1  # the next frame: the newer one is taken by then
        out: list[Frames] = []
        for sample in sent:
            seq = self._seq.get(sample.signal, 0)
            self._seq[sample.signal] = seq + 1
            message = _Outgoing(sample, seq, _wire(sample.signal, seq, sample.t_ns, sample.value))
            out.extend(m.frames for m in self._transport_faults(message))
        return out

    # -- sensor faults --

    def _sensor_faults(self, sample: Sample) -> Sample | None:
        """The sample as the faulty sensor delivers it now (None: dropped or held)."""
        signal, original = sample.signal, sample.value
        value = original
        for fault, rng in self._sensor:
            if not (fault.matches(signal) and fault.active(sample.t_ns)):
                continue
            if rng.random() >= fault.probability:
                continue
            detail = f"sample t_ns {sample.t_ns}"
            kind = fault.kind
            if kind is Kind.DROPOUT:
                self._applied(fault, signal, detail)
                return None
            if kind is Kind.STUCK:
                value = self._stuck.setdefault(fault.name, self._stuck_value(fault, sample))
            elif kind is Kind.BIAS:
                value = _cast(value.astype(np.float64) + _broadcast(fault.params["offset"], value),
                              value)
            elif kind is Kind.NOISE:
                noise = rng.standard_normal(value.shape) * fault.params["sigma"]
                value = _cast(value.astype(np.float64) + noise, value)
            else:  # delay, out of order: held, the value as faulted so far
                due = (sample.t_ns + fault.params["delay_ms"] * 1_000_000
                       if kind is Kind.DELAY else None)
                self._applied(fault, signal, detail)
                self._held.append(_Held(Sample(signal, sample.t_ns, value), due))
                self._last_value[signal] = original
                return None
            self._applied(fault, signal, detail)
        self._last_value[signal] = original
        return sample if value is original else Sample(signal, sample.t_ns, value)

    def _stuck_value(self, fault: Fault, sample: Sample) -> npt.NDArray[Any]:
        if "value" in fault.params:
            return _cast(_broadcast(fault.params["value"], sample.value), sample.value)
        return self._last_value.get(sample.signal, sample.value)

    # -- transport faults --

    def _transport_faults(self, message: _Outgoing) -> list[_Outgoing]:
        """The messages actually sent for one encoded message, in order."""
        messages = [message]
        topic = message.sample.signal
        for fault, rng in self._transport:
            if not fault.matches(topic):
                continue
            held = self._reordered.pop((fault.name, topic), None)
            if fault.active(self._t_ns) and rng.random() < fault.probability:
                detail = f"seq {message.seq}, sample t_ns {message.sample.t_ns}"
                if fault.kind is Kind.DROP:
                    messages = []
                elif fault.kind is Kind.DUPLICATE:
                    messages = messages + messages
                elif fault.kind is Kind.REORDER and held is None:
                    self._reordered[(fault.name, topic)] = message
                    messages = []
                elif fault.kind is Kind.CORRUPT:
                    modes = fault.params.get("modes", tuple(Corruption))
                    mode = modes[int(rng.integers(len(modes)))]
                    messages = [_Outgoing(m.sample, m.seq, _corrupt(m, mode)) for m in messages]
                    detail += f", {mode.value}"
                else:  # a reorder while one is held: this one goes out, the held one after it
                    detail = ""
                if detail:
                    self._applied(fault, topic, detail)
            if held is not None:
                messages.append(held)
        return messages

    def _applied(self, fault: Fault, target: str, detail: str) -> None:
        applied = Applied(self._t_ns, fault.name, fault.kind.value, target, detail)
        self.log.append(applied)
        if self._on_applied is not None:
            self._on_applied(applied)


def _wire(topic: str, seq: int, t_ns: int, value: npt.NDArray[Any]) -> Frames:
    """The frames :meth:`~flightai.client.Client.publish` sends, as bytes."""
    return [f if isinstance(f, bytes) else np.ascontiguousarray(f).tobytes()
            for f in encode(topic, seq, t_ns, [("value", value)])]


def _corrupt(message: _Outgoing, mode: Corruption) -> Frames:
    """The message's frames broken one way (each refused by the decoder for its reason)."""
    sample, frames = message.sample, message.frames
    if mode is Corruption.TRUNCATE:
        return [frames[0], frames[1], frames[2][:-1]]
    if mode is Corruption.BAD_MSGPACK:
        return [frames[0], b"\xc1" + frames[1][1:], *frames[2:]]  # 0xc1: never used
    if mode is Corruption.EXTRA_FRAME:
        return [*frames, b"\x00"]
    value = sample.value
    if mode is Corruption.WRONG_DTYPE:
        wrong = value.astype(_OTHER_DTYPE.get(value.dtype.name, np.float64))
    else:  # wrong shape: one element too many, flat
        wrong = np.append(value.reshape(-1), value.reshape(-1)[:1])
    return _wire(sample.signal, message.seq, sample.t_ns, wrong)


def _broadcast(numbers: tuple[float, ...], like: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """A parameter (one number, or one per element) shaped like a signal's value."""
    array = np.asarray(numbers, np.float64)
    return array.reshape(()) if array.size == 1 else array.reshape(like.shape)


def _cast(value: npt.NDArray[Any], like: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``value`` in the dtype and shape of the signal ``like`` belongs to."""
    return np.broadcast_to(value, like.shape).astype(like.dtype)
