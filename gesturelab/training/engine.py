"""Where trainings run: in this process, in local worker processes (joblib), or on a Dask cluster.

Workers only train and score; they never talk to MLflow. Every result comes back to the process
that started the sweep, which logs it: one writer per store. A SQLite store written by several
processes at once fails with "database is locked", and a remote worker may not even see the
store's path or the artifact folder; logging from the driver needs neither.

``Engine.open(shared)`` sends the data every task needs once (Dask scatters it to every worker;
joblib memory-maps its large arrays), then ``pool.map(fn, items)`` calls ``fn(shared, item)``
for each item and yields the results in the order of ``items`` while later items still run:
the driver logs the first configuration while the workers train the next ones.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from gesturelab.errors import EngineError

BACKENDS = ("serial", "joblib", "dask")
DEFAULT_BACKEND = "joblib"


def cores() -> int:
    """The cores this process may use (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Engine:
    """backend: "joblib" (local processes, the default), "dask", or "serial" (this process).

    workers: joblib processes or LocalCluster workers (default: the cores); ignored with a
        scheduler address, whose cluster has the workers it has.
    scheduler: a Dask scheduler's address (tcp://host:8786); None starts a LocalCluster.
    """

    backend: str = DEFAULT_BACKEND
    workers: int | None = None
    scheduler: str | None = None

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise EngineError(
                f"unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}"
            )
        if self.scheduler and self.backend != "dask":
            raise EngineError(f"a scheduler address is for --backend dask, not {self.backend}")
        if self.scheduler:
            from distributed.comm import get_address_host_port

            try:  # before a sweep starts, not when its first task is sent
                get_address_host_port(self.scheduler)
            except ValueError as error:
                raise EngineError(
                    f"--scheduler {self.scheduler!r} is not a scheduler address "
                    f"(tcp://host:8786): {error}"
                ) from None

    @property
    def n_workers(self) -> int:
        return max(1, self.workers or cores())

    def describe(self) -> str:
        if self.backend == "dask":
            where = self.scheduler or f"a LocalCluster of {self.n_workers} workers"
            return f"dask ({where})"
        if self.backend == "joblib":
            return f"joblib ({self.n_workers} local processes)"
        return "serial (this process)"

    @contextmanager
    def open(self, shared):
        if self.backend == "serial" or (self.backend == "joblib" and self.n_workers == 1):
            yield SerialPool(shared)
        elif self.backend == "joblib":
            yield _Joblib(shared, self.n_workers)
        else:
            with _dask_client(self) as client:
                yield _Dask(client, shared)


class SerialPool:
    """Tasks run here, one after another, when they are asked for."""

    def __init__(self, shared):
        self.shared = shared

    def map(self, fn: Callable, items: Iterable) -> Iterator:
        return (fn(self.shared, item) for item in items)


class _Joblib:
    def __init__(self, shared, n_jobs: int):
        self.shared = shared
        self.n_jobs = n_jobs

    def map(self, fn: Callable, items: Iterable) -> Iterator:
        from joblib import Parallel, delayed

        items = list(items)
        if not items:
            return iter(())
        # loky processes: a crashed worker (out of memory) fails the call instead of hanging it.
        parallel = Parallel(n_jobs=min(self.n_jobs, len(items)), return_as="generator")
        me = os.getpid()
        return parallel(delayed(_in_worker)(fn, self.shared, item, me) for item in items)


# What a worker may grow past its size after its first task before loky restarts it.
WORKER_GROWTH_BYTES = 4 * 2**30


# How often a worker looks whether the process it works for is still there.
PARENT_POLL_S = 1.0
_watching = False


def _exit_with(parent: int) -> None:
    """End this worker as soon as ``parent`` is gone. loky notices a parent killed with
    SIGKILL only between tasks, so a killed sweep or reproduce left workers computing a fit
    nobody would read for minutes, on the cores the next run wanted."""
    global _watching
    if _watching or os.getpid() == parent:  # joblib ran the task in the caller itself
        return
    _watching = True

    def watch():
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="gesturelab-parent-watch", daemon=True).start()


def _in_worker(fn: Callable, shared, item, parent: int):
    """``fn(shared, item)`` in a loky worker that is not restarted for keeping what it built.

    loky restarts a worker that grew 300 MB past its size after its first task, taking it for
    a leak, and warns "A worker stopped while some jobs were given to the executor". A worker
    that fits Keras models keeps TensorFlow's compiled kernels and graph caches, which the next
    fit reuses: restarting it only pays TensorFlow's import again. A real leak still ends the
    worker past ``WORKER_GROWTH_BYTES``.
    """
    from joblib.externals.loky import process_executor

    process_executor._MAX_MEMORY_LEAK_SIZE = max(
        process_executor._MAX_MEMORY_LEAK_SIZE, WORKER_GROWTH_BYTES
    )
    _exit_with(parent)
    return fn(shared, item)


class _Dask:
    def __init__(self, client, shared):
        self.client = client
        # Sent once to every worker instead of once per task.
        [self.shared] = client.scatter([shared], broadcast=True)

    def map(self, fn: Callable, items: Iterable) -> Iterator:
        futures = [self.client.submit(fn, self.shared, item, pure=False) for item in items]
        return (future.result() for future in futures)


@contextmanager
def _dask_client(engine: Engine):
    try:
        from distributed import Client, LocalCluster
    except ImportError as error:  # pragma: no cover - pinned in requirements.txt
        raise EngineError("--backend dask needs the distributed package") from error
    if engine.scheduler:
        try:
            client = Client(engine.scheduler, timeout="20s")
        except OSError as error:
            raise EngineError(
                f"no Dask scheduler answers at {engine.scheduler}: {error}"
            ) from error
        with client:
            yield client
        return
    # One thread per worker process: scikit-learn and TensorFlow are not shared between tasks,
    # and a worker is one core's worth of work.
    with (
        LocalCluster(
            n_workers=engine.n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
