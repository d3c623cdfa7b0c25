"""The command channel: every request gets an acknowledgement, accepted or rejected.

A request is one msgpack map ``{v, cmd, seq, args}``; the reply is
``{v, seq, status, reason, detail, result}``. Sequence numbers are per client
(its CURVE key, or its ROUTER routing id without CURVE) and must increase:
a repeated number is ``duplicate``, a smaller one ``out_of_order``, so a
replayed or reordered command never acts twice. Accepted commands that change
state take effect at the next frame boundary.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import msgpack

from flightai.bus.wire import MAX_HEADER_BYTES, PROTOCOL_VERSION, UINT64_MAX, UNPACK_ERRORS
from flightai.config.schema import CommandClass
from flightai.sched.health import Mode


class CommandReason(enum.Enum):
    """Reason codes of a rejected command."""

    MALFORMED = "malformed"
    BAD_VERSION = "bad_version"
    UNKNOWN_COMMAND = "unknown_command"
    BAD_ARGS = "bad_args"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"
    FORBIDDEN = "forbidden"
    INVALID_STATE = "invalid_state"


class Controllable(Protocol):
    """What commands act on (the executive)."""

    def request_enter_safe(self, reason: str = ...) -> None:
        """Enter SAFE at the next frame."""

    def request_leave_safe(self) -> None:
        """Leave SAFE at the next frame."""

    def request_reset_counters(self) -> None:
        """Zero the health counters at the next frame."""

    def request_restore_primary(self, task: str) -> None:
        """Unlatch a task's fallback at the next frame."""

    def stop(self) -> None:
        """Stop at the next frame boundary."""


@dataclass(frozen=True)
class _Spec:
    cls: CommandClass
    args: frozenset[str]


COMMANDS: dict[str, _Spec] = {
    "status": _Spec(CommandClass.READ, frozenset()),
    "set_mode": _Spec(CommandClass.CONTROL, frozenset({"mode"})),
    "restore_primary": _Spec(CommandClass.CONTROL, frozenset({"task"})),
    "reset_counters": _Spec(CommandClass.CONTROL, frozenset()),
    "stop": _Spec(CommandClass.ADMIN, frozenset()),
}


class Rejected(Exception):
    """A command refused with a reason code."""

    def __init__(self, reason: CommandReason, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}")


class CommandProcessor:
    """Validates, sequences, authorises and executes commands (receiver thread).

    Args:
        target: the executive the commands act on.
        status: returns the latest status snapshot (built on the frame thread).
        mode: returns the current mode.
        tasks: names of the periodic tasks (for ``restore_primary``).
        classes: allowed command classes by client key, or None when CURVE is off
            (then every class is allowed).
    """

    def __init__(self, target: Controllable, status: Callable[[], Mapping[str, Any]],
                 mode: Callable[[], Mode], tasks: frozenset[str],
                 classes: Mapping[str, frozenset[CommandClass]] | None) -> None:
        self._target = target
        self._status = status
        self._mode = mode
        self._tasks = tasks
        self._classes = classes
        self._last_seq: dict[str, int] = {}
        self._packer = msgpack.Packer()
        self.accepted = 0
        self.rejected: dict[str, int] = {}

    def handle(self, client: str, payload: bytes) -> bytes:
        """Answer one request from ``client`` with the packed acknowledgement; never raises."""
        seq: int | None = None
        try:
            request = self._parse(payload)
            seq = request["seq"]
            result = self._execute(client, request)
        except Exception as exc:  # the receiver thread must outlive any request
            rej = exc if isinstance(exc, Rejected) else Rejected(
                CommandReason.MALFORMED, f"request could not be handled ({type(exc).__name__})")
            self.rejected[rej.reason.value] = self.rejected.get(rej.reason.value, 0) + 1
            reply: dict[str, Any] = {"v": PROTOCOL_VERSION, "seq": seq, "status": "rejected",
                     "reason": rej.reason.value, "detail": rej.detail, "result": {}}
        else:
            self.accepted += 1
            reply = {"v": PROTOCOL_VERSION, "seq": seq, "status": "accepted", "reason": None,
                     "detail": "", "result": result}
        packed: bytes = self._packer.pack(reply)
        return packed

    @staticmethod
    def _parse(payload: bytes) -> dict[str, Any]:
        if len(payload) > MAX_HEADER_BYTES:
            raise Rejected(CommandReason.MALFORMED, f"request of {len(payload)} bytes")
        try:
            request = msgpack.unpackb(payload, max_str_len=MAX_HEADER_BYTES,
                                      max_bin_len=MAX_HEADER_BYTES, max_array_len=64,
                                      max_map_len=32, max_ext_len=0, strict_map_key=True,
                                      raw=False)
        except UNPACK_ERRORS as exc:
            raise Rejected(CommandReason.MALFORMED, "request is not valid msgpack") from exc
        if not isinstance(request, dict) or set(request) != {"v", "cmd", "seq", "args"}:
            raise Rejected(CommandReason.MALFORMED, "request must be a map {v, cmd, seq, args}")
        if type(request["v"]) is not int or request["v"] != PROTOCOL_VERSION:
            raise Rejected(CommandReason.BAD_VERSION, f"version {request['v']!r}")
        seq = request["seq"]
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= UINT64_MAX:
            raise Rejected(CommandReason.MALFORMED, "seq must be an unsigned 64-bit integer")
        args = request["args"]
        if not isinstance(request["cmd"], str) or not isinstance(args, dict) or not all(
                isinstance(k, str) for k in args):
            raise Rejected(CommandReason.MALFORMED,
                           "cmd must be a string and args a map with string keys")
        return request

    def _execute(self, client: str, request: dict[str, Any]) -> dict[str, Any]:
        name, seq, args = request["cmd"], request["seq"], request["args"]
        spec = COMMANDS.get(name)
        if spec is None:
            raise Rejected(CommandReason.UNKNOWN_COMMAND, repr(name))
        if set(args) != spec.args:
            raise Rejected(CommandReason.BAD_ARGS,
                           f"{name} takes {sorted(spec.args)}, got {sorted(args)}")
        if self._classes is not None and spec.cls not in self._classes.get(client, frozenset()):
            raise Rejected(CommandReason.FORBIDDEN, f"{name} needs the {spec.cls.value!r} class")
        last = self._last_seq.get(client)
        if last is not None and seq <= last:
            reason = CommandReason.DUPLICATE if seq == last else CommandReason.OUT_OF_ORDER
            raise Rejected(reason, f"seq {seq}, last accepted {last}")
        result = self._act(name, args)
        self._last_seq[client] = seq
        return result

    def _act(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        if name == "status":
            return {**self._status(), "mode": self._mode().value}
        if name == "set_mode":
            mode = args["mode"]
            if mode == Mode.SAFE.value:
                self._target.request_enter_safe("by command")
            elif mode == Mode.NOMINAL.value:
                if self._mode() is not Mode.SAFE:
                    raise Rejected(CommandReason.INVALID_STATE,
                                   f"NOMINAL is entered from SAFE; mode is {self._mode().value}")
                self._target.request_leave_safe()
            else:
                raise Rejected(CommandReason.BAD_ARGS,
                               f"mode must be SAFE or NOMINAL, got {mode!r}")
            return {"mode_before": self._mode().value}
        if name == "restore_primary":
            task = args["task"]
            if not isinstance(task, str) or task not in self._tasks:
                raise Rejected(CommandReason.BAD_ARGS, f"no task {task!r}")
            self._target.request_restore_primary(task)
            return {}
        if name == "reset_counters":
            self._target.request_reset_counters()
            return {}
        self._target.stop()
        return {}
