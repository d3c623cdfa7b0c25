"""Running under systemd: sd_notify, the deadline-gated watchdog, process settings.

The sd_notify protocol is one datagram of ``KEY=VALUE`` lines to the AF_UNIX
socket named by ``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract
namespace); it is implemented here with the standard library. Outside systemd
(no ``$NOTIFY_SOCKET``) every call is a no-op.

The watchdog is fed from the frame loop, and only after a frame in which no
deadline was missed: no task overran, the frame did not slip, no tick timed
out. A runtime that keeps missing deadlines therefore stops feeding it and
systemd restarts it (``WatchdogSec``), like a hardware watchdog kicked by a
healthy cycle only.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping

from flightai.config.schema import IfDenied, ProcessConfig
from flightai.errors import ServiceError
from flightai.sched.health import Event, Health
from flightai.sched.io import Publication

_STATUS_EVERY_NS = 1_000_000_000
_MCL_CURRENT, _MCL_FUTURE = 1, 2  # Linux x86-64 and arm64 values
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc mallopt options (malloc.h)
_INT_MAX = 2**31 - 1


class Notifier:
    """Sends sd_notify messages to ``$NOTIFY_SOCKET``; does nothing without it.

    Args:
        environ: the environment to read (``os.environ`` by default).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + path[1:] if path.startswith("@") else path
        self._socket: socket.socket | None = None  # opened by the first send
        self._closed = False
        self.watchdog_ns = _watchdog_interval_ns(env)

    @property
    def active(self) -> bool:
        """Whether a notify socket was given."""
        return bool(self._address)

    def send(self, *assignments: str) -> None:
        """Send ``KEY=VALUE`` assignments as one datagram; a lost message is not an error.

        The send never blocks: if systemd's queue is full or its socket is gone
        (it is restarting) the message is dropped and the runtime goes on; a
        dropped ping is made up by the next one, and a persistent loss is what
        the watchdog is for.
        """
        if not self._address or self._closed:
            return
        if self._socket is None:  # so that a run failing before READY leaves nothing open
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            # Never block the frame loop: when systemd's queue is full the datagram is dropped.
            self._socket.setblocking(False)
        with contextlib.suppress(OSError):
            self._socket.sendto("\n".join(assignments).encode(), self._address)

    def close(self) -> None:
        """Close the socket; later sends do nothing."""
        self._closed = True
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _watchdog_interval_ns(env: Mapping[str, str]) -> int:
    """Half of ``$WATCHDOG_USEC`` in ns, as sd_watchdog_enabled() advises; 0 when off.

    ``$WATCHDOG_PID``, when set, must be this process (else the watchdog is another's).
    """
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return 0
    return int(usec) * 1000 // 2


class WatchdogSink:
    """An output sink that pings the watchdog after frames that met every deadline.

    It runs on the frame thread (``frame_done``); a ping costs one datagram.
    A frame counts as missed when the overrun, frame-slip or tick-timeout
    counters moved during it, or when its work ended a minor frame or more
    after its instant (the next frame was due before this one was done).
    ``STATUS=`` carries mode and counters once a second.

    Args:
        notifier: where the pings go.
        mission: named in the status line.
        lateness_ns: the clock's ``lateness_ns``.
        frame_ns: the minor frame in nanoseconds.
    """

    def __init__(self, notifier: Notifier, mission: str, lateness_ns: Callable[[int], int],
                 frame_ns: int) -> None:
        self._notifier = notifier
        self._mission = mission
        self._lateness_ns = lateness_ns
        self._frame_ns = frame_ns
        self._misses = 0
        self._last_ping_ns = 0
        self._last_status_ns = 0
        self.pings = 0
        self.withheld = 0

    def publish(self, publication: Publication) -> None:
        """Publications do not concern the watchdog."""

    def event(self, event: Event) -> None:
        """Events are throttled; the watchdog reads counters instead."""

    def frame_done(self, t_ns: int, health: Health) -> None:
        """Ping if this frame met its deadlines and a ping is due; refresh the status."""
        overruns = sum(t.overruns for t in health.tasks.values())
        misses = overruns + health.frame_slips + health.tick_timeouts
        missed = misses != self._misses or self._lateness_ns(t_ns) >= self._frame_ns
        self._misses = misses
        now_ns = time.monotonic_ns()
        if missed:
            self.withheld += 1
        elif self._notifier.watchdog_ns and now_ns - self._last_ping_ns >= \
                self._notifier.watchdog_ns:
            self._notifier.send("WATCHDOG=1")
            self._last_ping_ns = now_ns
            self.pings += 1
        if now_ns - self._last_status_ns >= _STATUS_EVERY_NS:
            self._last_status_ns = now_ns
            self._notifier.send(f"STATUS={self._mission}: {health.mode.value}, frame "
                                f"{health.frames}, overruns {overruns}, frame slips "
                                f"{health.frame_slips}")


def apply_process(config: ProcessConfig) -> list[str]:
    """Apply CPU affinity, real-time priority, memory locking and heap keeping to this process.

    Call it before any thread starts: threads started later inherit affinity
    and scheduling policy.

    Returns:
        One line per setting applied or, with ``if_denied = "warn"``, refused.

    Raises:
        ServiceError: the OS refused a setting and ``if_denied = "refuse"``.
    """
    lines: list[str] = []
    if config.cpu_affinity:
        available = getattr(os, "sched_getaffinity", None)  # Linux only, as the setting is
        _try(config, lines, "cpu_affinity", f"CPUs {list(config.cpu_affinity)}",
             lambda: os.sched_setaffinity(0, config.cpu_affinity),
             f"this machine has CPUs {sorted(available(0))} available" if available
             else "CPU affinity is set on Linux only")
    if config.realtime_priority:
        _try(config, lines, "realtime_priority", f"SCHED_FIFO {config.realtime_priority}",
             lambda: os.sched_setscheduler(0, os.SCHED_FIFO,
                                           os.sched_param(config.realtime_priority)),
             "needs root, CAP_SYS_NICE or a RLIMIT_RTPRIO (systemd: LimitRTPRIO=, "
             "AmbientCapabilities=CAP_SYS_NICE)")
    if config.lock_memory:
        _try(config, lines, "lock_memory", "mlockall(MCL_CURRENT | MCL_FUTURE)", _mlockall,
             "needs root, CAP_IPC_LOCK or a large RLIMIT_MEMLOCK (systemd: LimitMEMLOCK=infinity)")
    if config.keep_heap:
        _try(config, lines, "keep_heap", "mallopt(M_MMAP_MAX 0, M_TRIM_THRESHOLD max)",
             keep_heap, "glibc's malloc only")
    return lines


def keep_heap() -> None:
    """Make glibc's malloc keep what it has: no ``mmap`` per large block, no trimming.

    By default a block of 128 KiB or more (a received camera frame, a large
    output) gets its own ``mmap`` and is unmapped when freed, and a heap's free
    top goes back to the OS: every such block is page-faulted in again, about
    a microsecond a page. Kept, freed memory is reused warm; the price is that
    the process never shrinks. Applies to allocations made from now on.

    Raises:
        OSError: not glibc, or glibc refused a setting.
    """
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None or not hasattr(libc, "gnu_get_libc_version"):
        raise OSError(errno.ENOSYS, "this C library is not glibc")
    for option, value in ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _INT_MAX)):
        if mallopt(option, value) != 1:
            raise OSError(errno.EINVAL, f"mallopt({option}, {value}) failed")


def _mlockall() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.mlockall(_MCL_CURRENT | _MCL_FUTURE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _try(config: ProcessConfig, lines: list[str], key: str, what: str,
         action: Callable[[], object], hint: str) -> None:
    if not sys.platform.startswith("linux"):
        error: OSError | None = OSError(errno.ENOSYS, f"not supported on {sys.platform}")
    else:
        try:
            action()
            error = None
        except OSError as exc:
            error = exc
    if error is None:
        lines.append(f"runtime.process.{key}: {what} applied")
        return
    message = (f"runtime.process.{key}: {what} refused by the OS: "
               f"{error.strerror or error} ({hint})")
    if config.if_denied is IfDenied.REFUSE:
        raise ServiceError(message + "; or set runtime.process.if_denied = \"warn\"")
    lines.append(f"WARNING: {message}; going on without it (if_denied = \"warn\")")
