"""The database stage: where a batch's transaction runs, one batch at a time, in order.

On RabbitMQ with PostgreSQL the transactions run on a thread of their own (`ThreadStage`),
so the loop thread reads the next deliveries, publishes the previous batch's outputs and acks
what the broker has confirmed while PostgreSQL works: at 1 target the loop thread used to wait
on the database for about 45% of its time (py-spy, docs/scaling.md). What the rules see does
not change: a batch starts only after the previous one has committed, so each batch sees every
earlier batch of this worker, and the outputs go out in the order the batches were taken.
The stage never touches the broker connection (py-amqp's is not thread-safe): heartbeats,
confirms and acks stay on the loop thread, which keeps reading while a batch waits for an
unavailable database.

Elsewhere (the embedded broker, or SQLite) the batch runs on the loop thread when submitted
(`InlineStage`), as it always did.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from queue import SimpleQueue
from typing import Protocol

from entity_sync.runtime.delivery import Delivery
from entity_sync.runtime.result import BatchResult

# None: the worker stopped while the database was down; nothing of the batch is acked.
RunBatch = Callable[[list[Delivery]], BatchResult | None]


@dataclass
class Finished:
    batch: list[Delivery]
    result: BatchResult | None
    started: float  # time.monotonic() when the batch was taken


@dataclass
class _Job:
    batch: list[Delivery]
    started: float
    future: Future[BatchResult | None] = field(default_factory=Future)


class Stage(Protocol):
    @property
    def busy(self) -> bool:
        """A batch was submitted and its result not taken yet."""
        ...

    def submit(self, batch: list[Delivery]) -> None: ...

    def take(self) -> Finished | None:
        """The submitted batch once it is done (re-raising what its run raised), else None."""
        ...

    def wait(self, timeout: float | None = None) -> None:
        """Block until the submitted batch is done (or the timeout passes)."""
        ...


class InlineStage:
    """Runs a batch on the calling thread, when submitted."""

    def __init__(self, run: RunBatch) -> None:
        self._run = run
        self._done: Finished | None = None

    @property
    def busy(self) -> bool:
        return self._done is not None

    def submit(self, batch: list[Delivery]) -> None:
        assert self._done is None, "one batch at a time"
        started = time.monotonic()
        self._done = Finished(batch, self._run(batch), started)

    def take(self) -> Finished | None:
        done, self._done = self._done, None
        return done

    def wait(self, timeout: float | None = None) -> None:
        return


class ThreadStage:
    """Runs batches on one daemon thread, started with the first batch."""

    def __init__(self, run: RunBatch, name: str = "database") -> None:
        self._run = run
        self._name = name
        self._jobs: SimpleQueue[_Job] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._job: _Job | None = None

    @property
    def busy(self) -> bool:
        return self._job is not None

    def submit(self, batch: list[Delivery]) -> None:
        assert self._job is None, "one batch at a time"
        if self._thread is None:
            # A daemon: a worker ended by an exception on the loop thread does not keep the
            # process alive; a batch cut short is rolled back and its deliveries redelivered.
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()
        self._job = _Job(batch, time.monotonic())
        self._jobs.put(self._job)

    def take(self) -> Finished | None:
        job = self._job
        if job is None or not job.future.done():
            return None
        self._job = None
        return Finished(job.batch, job.future.result(), job.started)

    def wait(self, timeout: float | None = None) -> None:
        job = self._job
        if job is not None:
            with contextlib.suppress(TimeoutError):
                job.future.exception(timeout)

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job.future.set_result(self._run(job.batch))
            except BaseException as exc:  # noqa: BLE001 - re-raised on the loop thread by take()
                job.future.set_exception(exc)
