"""The service path without systemd: a real notify socket, ``flightai run`` as a child."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flightai.config import load_mission
from flightai.config.schema import IfDenied, ProcessConfig
from flightai.errors import ServiceError
from flightai.runtime import build_executive
from flightai.sched.clock import FastClock
from flightai.sched.executive import Overrun, OverrunKind
from flightai.sched.health import Event, Health
from flightai.sched.io import Publication
from flightai.service import Notifier, WatchdogSink, apply_process
from hil.ports import free_ports

ROOT = Path(__file__).resolve().parents[2]
LITE = ROOT / "examples" / "ltd1-lite" / "mission.toml"
MS = 1_000_000


class NotifyListener:
    """A bound AF_UNIX datagram socket standing in for systemd's notify socket."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.05)
        self.messages: list[str] = []

    def drain(self) -> None:
        try:
            while True:
                self.messages.append(self.sock.recv(4096).decode())
        except (TimeoutError, BlockingIOError):
            pass

    def wait_for(self, predicate: object, timeout_s: float) -> bool:
        """Receive until ``predicate(messages)`` holds or the bound passes."""
        assert callable(predicate)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.drain()
            if predicate(self.messages):
                return True
        return bool(predicate(self.messages))

    def count(self, line: str) -> int:
        return sum(line in m.splitlines() for m in self.messages)


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifyListener]:
    sock = NotifyListener(str(tmp_path / "notify"))
    yield sock
    sock.sock.close()


def _start(mission: Path, notify: str, watchdog_usec: int, *sets: str) -> subprocess.Popen[str]:
    env = {**os.environ, "NOTIFY_SOCKET": notify, "WATCHDOG_USEC": str(watchdog_usec),
           "OPENBLAS_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "flightai", "run", str(mission), "--quiet"]
    for item in sets:
        argv += ["--set", item]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _stop(proc: subprocess.Popen[str], terminate: bool = True) -> tuple[int, str]:
    """Wait for the child's exit (after a SIGTERM unless the test sent it), then reap it."""
    if terminate and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return proc.returncode, out


@pytest.mark.slow
def test_ready_then_watchdog_pings_then_stopping_on_sigterm(
        listener: NotifyListener, tmp_path: Path) -> None:
    ports = free_ports(3)
    stopping = False
    proc = _start(LITE, str(tmp_path / "notify"), 200_000,
                  *(f'bus.{k}="tcp://127.0.0.1:{p}"'
                    for k, p in zip(("sensors", "outputs", "commands"), ports, strict=True)))
    try:
        ready = listener.wait_for(lambda m: any("READY=1" in x.splitlines() for x in m), 120)
        assert ready, _stop(proc)[1]
        pinged = listener.wait_for(lambda m: listener.count("WATCHDOG=1") >= 3, 60)
        assert pinged, listener.messages
        proc.send_signal(signal.SIGTERM)
        stopping = listener.wait_for(lambda m: listener.count("STOPPING=1") >= 1, 60)
    finally:
        status, out = _stop(proc, terminate=not stopping)
    assert stopping and status == 0, out
    lines = [line for m in listener.messages for line in m.splitlines()]
    first_ready, first_ping = lines.index("READY=1"), lines.index("WATCHDOG=1")
    assert first_ready < first_ping < lines.index("STOPPING=1")
    assert "STATUS=ltd1-lite: READY" in lines
    assert "stopped at mission time" in out  # a clean stop at a frame boundary, summary printed


SLOW_MISSION = """
[mission]
name = "always-late"

[runtime]
minor_frame_ms = 10
clock = "wall"

[[signals]]
name = "x"
dtype = "float32"
shape = [1]

[[tasks]]
name = "slow"
function = "slow.py:slow"
period_ms = 20
deadline_ms = 10
inputs = {}
outputs = { y = "x" }
"""

SLOW_TASK = """
import time
import numpy as np

def slow(inputs):
    time.sleep(0.03)  # three minor frames: every job misses its 10 ms deadline
    return {"y": np.zeros(1, dtype=np.float32)}
"""


@pytest.mark.slow
def test_no_watchdog_ping_after_a_cycle_that_missed_its_deadline(
        listener: NotifyListener, tmp_path: Path) -> None:
    (tmp_path / "mission.toml").write_text(textwrap.dedent(SLOW_MISSION))
    (tmp_path / "slow.py").write_text(textwrap.dedent(SLOW_TASK))
    proc = _start(tmp_path / "mission.toml", str(tmp_path / "notify"), 20_000)
    stopping = False
    try:
        ready = listener.wait_for(lambda m: listener.count("READY=1") >= 1, 120)
        assert ready, _stop(proc)[1]
        # The loop runs (a status line a second, overruns counted) but never feeds the watchdog.
        running = listener.wait_for(lambda m: sum(
            x.startswith("STATUS=always-late: NOMINAL") and "overruns 0," not in x
            for x in m) >= 2, 60)
        proc.send_signal(signal.SIGTERM)
        stopping = listener.wait_for(lambda m: listener.count("STOPPING=1") >= 1, 60)
    finally:
        status, out = _stop(proc, terminate=not stopping)
    assert running and stopping and status == 0, (listener.messages, out)
    assert listener.count("WATCHDOG=1") == 0, listener.messages


class _PingsPerFrame:
    """Records, after each frame, how many pings the watchdog sink has sent."""

    def __init__(self, watchdog: WatchdogSink) -> None:
        self.watchdog = watchdog
        self.after: dict[int, int] = {}

    def publish(self, publication: Publication) -> None:
        pass

    def event(self, event: Event) -> None:
        pass

    def frame_done(self, t_ns: int, health: Health) -> None:
        self.after[t_ns] = self.watchdog.pings


def test_the_frames_that_miss_a_deadline_are_the_ones_not_followed_by_a_ping() -> None:
    address = f"@flightai-test-{os.getpid()}"
    server = NotifyListener("\0" + address[1:])  # the abstract namespace, as systemd may use
    notifier = Notifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1"})
    config = load_mission(LITE)
    clock = FastClock()
    watchdog = WatchdogSink(notifier, config.name, clock.lateness_ns, config.runtime.minor_frame_ns)
    recorder = _PingsPerFrame(watchdog)
    # guidance (period 20 ms, offset 10, deadline 10): forced late at its releases at 10
    # and 50 ms, so the frames at 20 and 60 ms are the ones that see a deadline missed.
    forced = [Overrun("guidance", 10 * MS, OverrunKind.LATE),
              Overrun("guidance", 50 * MS, OverrunKind.LATE)]
    executive = build_executive(config, clock=clock, sinks=[watchdog, recorder],
                                injected_overruns=forced)
    try:
        executive.run(100 * MS)
        previous, unfed = 0, []
        for t_ns, pings in sorted(recorder.after.items()):
            if pings == previous:
                unfed.append(t_ns // MS)
            previous = pings
        assert unfed == [20, 60]
        assert watchdog.pings == 8 and watchdog.withheld == 2
        assert server.wait_for(lambda m: server.count("WATCHDOG=1") == 8, 10)
    finally:
        notifier.close()
        server.sock.close()


def test_notifier_outside_systemd_and_watchdog_settings() -> None:
    quiet = Notifier({})
    assert not quiet.active and quiet.watchdog_ns == 0
    quiet.send("READY=1")  # a no-op, no error
    mine = Notifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "3000000",
                     "WATCHDOG_PID": str(os.getpid())})
    other = Notifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "3000000",
                      "WATCHDOG_PID": str(os.getpid() + 1)})
    try:
        assert mine.active and mine.watchdog_ns == 1_500_000_000  # half of WATCHDOG_USEC
        assert other.watchdog_ns == 0  # the watchdog is another process's
    finally:
        mine.close()
        other.close()


def test_the_notify_socket_is_opened_by_the_first_message_and_closed_for_good() -> None:
    address = f"@flightai-lazy-{os.getpid()}"
    server = NotifyListener("\0" + address[1:])
    before = len(os.listdir("/proc/self/fd"))
    notifier = Notifier({"NOTIFY_SOCKET": address})
    try:
        assert len(os.listdir("/proc/self/fd")) == before  # a run that fails to load opens none
        notifier.send("READY=1")
        assert len(os.listdir("/proc/self/fd")) == before + 1
        notifier.close()
        assert len(os.listdir("/proc/self/fd")) == before
        notifier.send("STOPPING=1")  # after close (a late signal): nothing is sent or opened
        assert len(os.listdir("/proc/self/fd")) == before
        assert server.wait_for(lambda m: server.count("READY=1") == 1, 10)
        assert server.count("STOPPING=1") == 0
    finally:
        notifier.close()
        server.sock.close()


def test_cpu_affinity_is_applied_or_refused_clearly() -> None:
    original = os.sched_getaffinity(0)
    try:
        one = min(original)
        assert apply_process(ProcessConfig(cpu_affinity=(one,))) == [
            f"runtime.process.cpu_affinity: CPUs [{one}] applied"]
        assert os.sched_getaffinity(0) == {one}
    finally:
        os.sched_setaffinity(0, original)
    with pytest.raises(ServiceError, match=r"runtime.process.cpu_affinity: CPUs \[4000\] refused "
                       r"by the OS: .*this machine has CPUs"):
        apply_process(ProcessConfig(cpu_affinity=(4000,)))
    warned = apply_process(ProcessConfig(cpu_affinity=(4000,), if_denied=IfDenied.WARN))
    assert len(warned) == 1 and warned[0].startswith("WARNING: runtime.process.cpu_affinity")
    assert os.sched_getaffinity(0) == original


PRIVILEGED = """
from flightai.config.schema import IfDenied, ProcessConfig
from flightai.errors import ServiceError
from flightai.service import apply_process
for line in apply_process(ProcessConfig(realtime_priority=10, lock_memory=True,
                                        if_denied=IfDenied.WARN)):
    print(line)
try:
    apply_process(ProcessConfig(realtime_priority=10))
except ServiceError as exc:
    print("REFUSED", exc)
"""


@pytest.mark.skipif(shutil.which("setpriv") is None or shutil.which("prlimit") is None,
                    reason="needs setpriv and prlimit (util-linux) to drop the privileges")
def test_realtime_priority_and_memory_lock_without_privileges() -> None:
    argv = ["prlimit", "--memlock=65536:65536", "--rtprio=0:0", "setpriv", "--bounding-set",
            "-sys_nice,-ipc_lock", sys.executable, "-c", PRIVILEGED]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stderr
    assert lines[0].startswith("WARNING: runtime.process.realtime_priority: SCHED_FIFO 10 "
                               "refused by the OS") and "LimitRTPRIO" in lines[0]
    assert lines[1].startswith("WARNING: runtime.process.lock_memory: mlockall") and \
        "LimitMEMLOCK" in lines[1]
    assert lines[2].startswith("REFUSED runtime.process.realtime_priority: SCHED_FIFO 10 refused")
    assert 'if_denied = "warn"' in lines[2]


HEAP = """
import os, sys
from flightai.config.schema import ProcessConfig
from flightai.service import apply_process
if sys.argv[1] == "keep":
    print(apply_process(ProcessConfig(keep_heap=True))[0], file=sys.stderr)
page = os.sysconf("SC_PAGE_SIZE")
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * page
before = rss()
block = b"\\x01" * (64 << 20)  # written, so every page is resident
held = rss()
del block
print(held - before, held - rss())
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/statm") or
                    not hasattr(ctypes.CDLL(None), "gnu_get_libc_version"), reason="glibc on Linux")
def test_keep_heap_keeps_a_freed_large_block_resident() -> None:
    def grown_and_returned(mode: str) -> tuple[int, int]:
        done = subprocess.run([sys.executable, "-c", HEAP, mode], capture_output=True,
                              text=True, timeout=120, check=True)
        if mode == "keep":
            assert done.stderr.startswith("runtime.process.keep_heap: mallopt") and \
                "applied" in done.stderr
        grown, returned = map(int, done.stdout.split())
        return grown, returned

    grown, returned = grown_and_returned("default")
    assert grown >= 60 << 20 and returned >= 60 << 20  # its own mmap, unmapped when freed
    grown, returned = grown_and_returned("keep")
    assert grown >= 60 << 20 and returned < 4 << 20  # from the heap, and kept there


def test_a_full_notify_queue_drops_messages_instead_of_blocking_the_frame_loop() -> None:
    address = f"@flightai-full-{os.getpid()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + address[1:])  # bound, never read: its queue fills after a few
    notifier = Notifier({"NOTIFY_SOCKET": address})
    done = threading.Event()

    def flood() -> None:
        for _ in range(1000):
            notifier.send("WATCHDOG=1")
        done.set()

    try:
        threading.Thread(target=flood, daemon=True).start()
        assert done.wait(30)  # a blocking send would hang here on the first full queue
    finally:
        notifier.close()
        server.close()


def test_process_settings_elsewhere_than_linux_are_refused_or_warned_not_a_crash(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    for name in ("sched_getaffinity", "sched_setaffinity", "sched_param", "sched_setscheduler",
                 "SCHED_FIFO"):
        monkeypatch.delattr(os, name)  # as on macOS
    config = ProcessConfig(cpu_affinity=(0,), realtime_priority=10, if_denied=IfDenied.WARN)
    lines = apply_process(config)
    assert [line.split(":")[1] for line in lines] == [
        " runtime.process.cpu_affinity", " runtime.process.realtime_priority"]
    assert all("not supported on darwin" in line for line in lines)
    with pytest.raises(ServiceError, match="cpu_affinity: CPUs \\[0\\] refused by the OS: not "
                       "supported on darwin \\(CPU affinity is set on Linux only\\)"):
        apply_process(ProcessConfig(cpu_affinity=(0,)))
