"""A Dask client: a local cluster of worker processes by default, or any scheduler address."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import dask
from distributed import Client, LocalCluster, as_completed

WORKER_ENV: dict[str, str | None] = {
    "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
    "MALLOC_TRIM_THRESHOLD_": None,
}
"""Set in each local worker before it starts (None: unset).

One BLAS thread per single-threaded worker. Dask's nanny also sets
``MALLOC_TRIM_THRESHOLD_=65536`` by default, so that glibc hands freed memory back
to the OS at once; a case frees and reallocates its camera images and map patches
every frame, which then come back as fresh page faults: a case took 1.3 to 1.6
times as long on a worker as in a plain loop. Unset, the worker keeps glibc's
defaults, as the plain loop does, and one case's memory is reused by the next.
"""


@contextmanager
def open_client(scheduler: str | None = None, workers: int = 2) -> Iterator[Client]:
    """A client of ``scheduler`` (``tcp://host:port``) or of a new local cluster.

    The local cluster has ``workers`` worker processes of one thread each on
    loopback, no dashboard, BLAS limited to one thread per worker and glibc's own
    heap trimming (:data:`WORKER_ENV`, set before the worker process starts). A
    remote cluster's workers must be set up the same way (``docs/campaigns.md``).
    """
    if scheduler is not None:
        with Client(scheduler) as client:  # type: ignore[no-untyped-call]
            yield client
        return
    environ = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_ENV.items()}
    with dask.config.set(environ), \
            LocalCluster(n_workers=workers, threads_per_worker=1,  # type: ignore[no-untyped-call]
                         processes=True, host="127.0.0.1", dashboard_address=None) as cluster, \
            Client(cluster) as client:  # type: ignore[no-untyped-call]
        yield client


def collect(client: Client, futures: Sequence[Any], keep: Callable[[Any], None],
            failed: Callable[[Any], Exception], done: int, total: int,
            progress: Callable[[int, int], None] | None = None) -> None:
    """Hand each future to ``keep`` as it completes, release it and report progress.

    ``futures`` are :class:`distributed.Future` (typed ``Any``: their key and
    ``exception()`` are untyped). ``done`` of ``total`` were finished before; a
    future that raised raises ``failed(future)``. Whatever way this ends, futures
    still pending are cancelled.
    """
    try:
        for future in as_completed(futures):  # type: ignore[no-untyped-call]
            if future.status == "error":
                raise failed(future)
            keep(future)
            future.release()
            done += 1
            if progress:
                progress(done, total)
    finally:
        client.cancel([f for f in futures if not f.done()])  # type: ignore[no-untyped-call]

