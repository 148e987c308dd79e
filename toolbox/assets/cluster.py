"""Running precompute tasks on Ray: a local runtime (``--workers N``) or an existing cluster
(``--cluster ADDRESS``). Only ``deepvis precompute`` imports this module, and only then;
nothing else in deepvis imports Ray (an optional extra: ``pip install deepvis[cluster]``).

Each worker is an actor that loads the network once, with TensorFlow limited to ``threads``
threads (so N workers on one machine share its cores instead of oversubscribing them), and
takes one task at a time. The driver keeps every worker busy, commits each result as it
arrives (``ray.wait``), and when a worker dies (its process killed, its node lost), starts a
new one and gives it the lost task again: only that task is redone. A task's result depends
only on the task (its seed comes from what it computes), so the outputs are the same for any
number of workers.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import time
from typing import Any, Callable, Sequence

from toolbox.assets.precompute import CircuitParams, Committer, CropParams, Outcome, Task, UnitParams, Worker
from toolbox.errors import UserError

log = logging.getLogger(__name__)


def local_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _first_line(e: BaseException) -> str:
    lines = [line for line in str(e).splitlines() if line.strip()]
    return (lines[-1] if lines else type(e).__name__)[:300]


def check_address(address: str, timeout: float = 5.0) -> None:
    """A one-line UserError unless something accepts a connection at ``address`` (``HOST:PORT``
    or ``ray://HOST:PORT``; ``auto`` is left to Ray): Ray itself retries an address where
    nobody listens for minutes, printing its own warnings."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[1] if "://" in address else address
    host, _, port = hostport.rstrip("/").rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--cluster {address[:80]!r} is not an address: use HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        reason = "timed out" if isinstance(e, TimeoutError) else (e.strerror or type(e).__name__)
        raise UserError(f"no Ray cluster answers at {address[:80]} ({reason}); is its head running "
                        f"('ray start --head')?") from None


class _ActorBody:
    """A Ray actor's state: the network and a Worker on it."""

    def __init__(self, settings: Any, unit_params: UnitParams | None, crop_params: CropParams | None,
                 threads: int, circuit_params: CircuitParams | None = None) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        for name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
            os.environ[name] = str(threads)
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
        from toolbox.nets import load_network

        self.worker = Worker(load_network(settings), unit_params, crop_params, circuit_params)

    def pid(self) -> int:
        return os.getpid()

    def run(self, task: Task, known: dict | None) -> dict:
        return self.worker.run(task, known)


class RayRunner:
    """Runs tasks on ``workers`` actors of a Ray runtime: the one already started in this
    process, else a local one (``address`` None) or the cluster at ``address``."""

    def __init__(self, settings: Any, unit_params: UnitParams | None, crop_params: CropParams | None,
                 workers: int = 0, address: str | None = None, threads: int = 0, retries: int = 3,
                 circuit_params: CircuitParams | None = None) -> None:
        self.settings, self.unit_params, self.crop_params = settings, unit_params, crop_params
        self.circuit_params = circuit_params
        self.workers, self.address, self.threads, self.retries = workers, address, threads, retries
        self.pids: dict[int, int] = {}  # worker slot -> its process id (tests kill them)
        self._own_runtime = False

    def _start_runtime(self) -> None:
        import ray

        if ray.is_initialized():
            return
        quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
        try:
            if self.address:  # an existing cluster: its resources and dashboard are its own
                check_address(self.address)
                ray.init(address=self.address, **quiet)
            else:
                ray.init(num_cpus=max(self.workers, local_cores()), include_dashboard=False, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as e:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray runtime"
            raise UserError(f"cannot start {where}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
        self._own_runtime = True

    def _shape(self) -> tuple[int, int]:
        """(workers, threads per worker)."""
        import ray

        threads, workers = self.threads, self.workers
        if self.address or not self._own_runtime and workers == 0:
            cpus = int(ray.cluster_resources().get("CPU", 1))
            threads = threads or 1
            workers = workers or max(1, cpus // threads)
        else:
            threads = threads or max(1, local_cores() // max(workers, 1))
        return max(workers, 1), threads

    def run(self, tasks: Sequence[Task], commit: Committer,
            on_done: Callable[[Task, dict], None] | None = None) -> Outcome:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        outcome = Outcome(planned=len(tasks))
        if not tasks:
            return outcome
        self._start_runtime()
        start = time.perf_counter()
        actors: dict[int, Any] = {}
        try:
            workers, threads = self._shape()
            workers = min(workers, len(tasks))
            outcome.workers = workers
            actor = ray.remote(num_cpus=threads, max_restarts=0, max_task_retries=0)(_ActorBody)
            log.info("%d Ray workers, %d TensorFlow thread%s each", workers, threads, "s" * (threads != 1))

            def new_actor() -> Any:
                return actor.remote(self.settings, self.unit_params, self.crop_params, threads, self.circuit_params)

            actors = {slot: new_actor() for slot in range(workers)}
            try:  # every worker has loaded the network
                self.pids = dict(zip(actors, ray.get([a.pid.remote() for a in actors.values()])))
            except RayActorError as e:
                raise UserError(f"the Ray workers could not start: {_first_line(e)}") from None
            outcome.startup = time.perf_counter() - start
            queue = collections.deque(tasks)
            running: dict[Any, tuple[int, Task]] = {}
            attempts: collections.Counter = collections.Counter()

            def submit(slot: int) -> None:
                if queue:
                    task = queue.popleft()
                    running[actors[slot].run.remote(task, commit.known(task))] = (slot, task)

            for slot in actors:
                submit(slot)
            while running:
                ready, _ = ray.wait(list(running), num_returns=1)
                slot, task = running.pop(ready[0])
                try:
                    result = ray.get(ready[0])
                except RayTaskError as e:  # the task itself failed: a mistake (UserError) or a bug
                    cause = e.as_instanceof_cause()
                    if isinstance(cause, UserError):
                        raise UserError(str(cause).splitlines()[-1]) from None
                    raise
                except RayActorError as e:
                    attempts[task.id] += 1
                    if attempts[task.id] > self.retries:
                        raise UserError(f"a worker died {attempts[task.id]} times on {task.describe()}; giving up "
                                        f"({_first_line(e)})") from None
                    log.warning("worker %d died during %s; starting a new one, the task is retried", slot,
                                task.describe())
                    outcome.retried += 1
                    ray.kill(actors[slot], no_restart=True)
                    actors[slot] = new_actor()
                    self.pids.pop(slot, None)
                    queue.appendleft(task)
                    submit(slot)
                    continue
                commit(task, result)
                outcome.done += 1
                if on_done is not None:
                    on_done(task, result)
                submit(slot)
        finally:
            for a in actors.values():
                try:
                    ray.kill(a, no_restart=True)
                except Exception:  # noqa: BLE001 (already gone)
                    pass
            if self._own_runtime:
                ray.shutdown()
                self._own_runtime = False
        outcome.seconds = time.perf_counter() - start
        return outcome
