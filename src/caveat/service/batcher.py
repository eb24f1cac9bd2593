"""Dynamic micro-batching: concurrent requests share forward passes.

One asyncio task owns the model. It takes the first waiting job, then gathers more for at most
``max_wait_s`` (or until ``max_batch_size`` inputs), groups them by ``options.batch_key`` and hands
each group to ``run_batch`` in a single-thread executor, so the event loop keeps accepting
requests while the model computes. If a group fails, each of its jobs is retried alone so that only
the job that really fails gets the error; the worker itself never stops on an exception.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

from caveat.service.errors import InferenceFailed, RequestError

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One request's inputs, its options (with a ``batch_key``) and the future its caller awaits."""

    inputs: Sequence
    options: object
    future: asyncio.Future = field(repr=False)


RunBatch = Callable[[list[Job]], list[list[dict]]]  # jobs with one batch_key -> rows of each job, in order


class MicroBatcher:
    """Group concurrent jobs into batches for ``run_batch``.

    Parameters
    ----------
    run_batch : computes the rows of a list of jobs that share a ``batch_key`` (runs in ``executor``).
    executor : a single-thread executor that owns the model.
    max_batch_size : most inputs gathered per batch (a larger single request runs alone).
    max_wait_s : longest wait, from the first job, for more jobs to join.
    on_failure : called once per failed job (for a metric).
    """

    def __init__(
        self,
        run_batch: RunBatch,
        executor: Executor,
        *,
        max_batch_size: int,
        max_wait_s: float,
        on_failure: Callable[[], None] | None = None,
    ):
        if max_batch_size < 1 or max_wait_s < 0:
            raise ValueError(f"max_batch_size must be >= 1 and max_wait_s >= 0; got {max_batch_size}, {max_wait_s}")
        self.run_batch, self.executor = run_batch, executor
        self.max_batch_size, self.max_wait_s = max_batch_size, max_wait_s
        self.on_failure = on_failure or (lambda: None)
        self._queue: asyncio.Queue[Job] | None = None
        self._task: asyncio.Task | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> MicroBatcher:
        """Start the worker task on the running event loop."""
        if self.running:
            raise RuntimeError("the batcher is already running; call stop() first")
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._work(), name="caveat-batcher")
        return self

    async def stop(self) -> None:
        """Stop the worker; jobs still queued fail with 503 (the service is shutting down)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        while self._queue is not None and not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(RequestError("the service is shutting down: retry on another instance", 503))

    async def submit(self, inputs: Sequence, options) -> list[dict]:
        """Queue one request and wait for its rows (one per input)."""
        if not self.running:
            raise RequestError(
                "the model worker is not running (starting or shutting down): retry once /readyz is 200",
                503,
                {"Retry-After": "1"},
            )
        job = Job(inputs, options, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(job)
        return await job.future

    async def _gather(self, first: Job) -> tuple[list[Job], Job | None]:
        """``first`` plus the jobs that arrive within ``max_wait_s`` while they fit; the job that did not
        fit is returned to open the next batch."""
        loop = asyncio.get_running_loop()
        jobs, size = [first], len(first.inputs)
        deadline = loop.time() + self.max_wait_s
        while size < self.max_batch_size:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), timeout)
                except asyncio.TimeoutError:  # the builtin TimeoutError from 3.11 on
                    break
            if size + len(job.inputs) > self.max_batch_size:
                return jobs, job
            jobs.append(job)
            size += len(job.inputs)
        return jobs, None

    async def _work(self) -> None:
        carry: Job | None = None
        while True:
            first = carry if carry is not None else await self._queue.get()
            carry = None
            jobs: list[Job] = [first]
            try:
                jobs, carry = await self._gather(first)
                groups: dict[tuple, list[Job]] = {}
                for job in jobs:
                    if not job.future.done():  # the caller may have gone away
                        groups.setdefault(job.options.batch_key, []).append(job)
                for group in groups.values():
                    await self._run_group(group)
            except asyncio.CancelledError:
                for job in jobs + ([carry] if carry else []):
                    if not job.future.done():
                        job.future.set_exception(RequestError("the service is shutting down: retry", 503))
                raise
            except Exception as err:  # a bug here must not stop the worker: fail these jobs only
                log.exception("micro-batcher failed on %d jobs", len(jobs))
                for job in jobs:
                    self._fail(job, err)

    async def _run_group(self, group: list[Job]) -> None:
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self.executor, self.run_batch, group)
        except Exception as err:
            if len(group) == 1:
                self._fail(group[0], err)
                return
            log.warning(
                "a batch of %d requests failed (%s: %s); retrying them one by one", len(group), type(err).__name__, err
            )
            for job in group:
                await self._run_group([job])
            return
        for job, rows in zip(group, results):
            if not job.future.done():
                job.future.set_result(rows)

    def _fail(self, job: Job, err: Exception) -> None:
        if job.future.done():
            return
        self.on_failure()
        if isinstance(err, RequestError):
            job.future.set_exception(err)
            return
        log.error("inference failed on a request of %d inputs", len(job.inputs), exc_info=err)
        job.future.set_exception(
            InferenceFailed(
                f"inference failed on this request's inputs ({type(err).__name__}: {err}); no other request was "
                "affected and the service keeps serving: check these inputs (e.g. shorter or plainer text) or report "
                "the error"
            )
        )
