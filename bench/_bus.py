"""Shared pieces of the bus benches: free loopback ports and the runtime child process."""

from __future__ import annotations

import argparse
import os
import resource
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import _common as common

from flightai.bus.server import BusServer
from flightai.config.loader import parse_mission
from flightai.runtime import LoadedTasks, build_executive, make_clock
from flightai.service import keep_heap

_KEPT_HEAP_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**31 - 1)}


def parse_args(description: str) -> argparse.Namespace:
    """``--quick`` and ``--default-heap``."""
    parser = common.make_parser(description)
    parser.add_argument("--default-heap", action="store_true",
                        help="leave glibc's malloc as it is (default: keep the heap, as "
                             "runtime.process.keep_heap does, in every process of the run)")
    return parser.parse_args()


def set_heap(default_heap: bool) -> str:
    """Keep the heap in this process and every process it spawns, unless ``default_heap``.

    Raw baselines and flightai alike: the same malloc in every process of a run.
    """
    if default_heap:
        return "glibc default"
    keep_heap()
    os.environ.update(_KEPT_HEAP_ENV)  # glibc reads these when a spawned child starts
    return "kept in every process (runtime.process.keep_heap: M_MMAP_MAX 0, no trimming)"


def result_name(bench: str, default_heap: bool) -> str:
    """``bench/results/`` name of a run: ``_default_heap`` marks glibc's defaults."""
    return f"{bench}_default_heap" if default_heap else bench


def maxrss_mib() -> float:
    """Peak resident memory of this process in MiB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def runtime_child(data: dict[str, Any], make_tasks: Callable[[], LoadedTasks],
                  conn: Connection) -> None:
    """The runtime: BusServer + executive (frame loop on the main thread, as ``flightai run``).

    Sends ``("ready", None)``, runs until anything arrives on ``conn``, then sends
    ``("stopped", figures)``; any failure is sent as ``("error", traceback)``.
    """
    try:
        config = parse_mission(data, common.BENCH_DIR)
        clock = make_clock(config)
        bus = BusServer(config, clock)
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        return
    try:
        executive = build_executive(config, clock=clock, source=bus.input, sinks=[bus.sink],
                                    loaded=make_tasks())
        bus.attach(executive)
        bus.start()

        def wait_for_stop() -> None:
            conn.recv()
            executive.stop()

        threading.Thread(target=wait_for_stop, daemon=True).start()
        conn.send(("ready", None))
        executive.run(None)
        conn.send(("stopped", {"health": executive.health.snapshot(),
                               "bus": {"received": bus.checks.received,
                                       "rejects": dict(bus.checks.rejects),
                                       "sequence_gaps": bus.checks.gaps,
                                       "future_rejects": bus.input.future_rejects},
                               "output_drops": bus.sink.dropped,
                               "peak_rss_mib": maxrss_mib()}))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        bus.close()


def expect(conn: Connection, what: str, timeout_s: float = 60.0) -> Any:
    """The payload of the child's next message, which must be ``what`` (else raise)."""
    if not conn.poll(timeout_s):
        raise RuntimeError(f"child process: no {what!r} within {timeout_s} s")
    kind, payload = conn.recv()
    if kind == "error":
        raise RuntimeError(f"child process failed:\n{payload}")
    if kind != what:
        raise RuntimeError(f"child process: expected {what!r}, got {kind!r}")
    return payload
