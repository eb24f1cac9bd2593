"""Dynamic micro-batching: concurrent requests share forward passes.

One asyncio task owns the model. It takes the first waiting job, then gathers more for at most
``max_wait_s`` (or until ``max_batch_size`` inputs), groups them by ``options.batch_key`` and hands
each group to ``run_batch`` in a single-thread executor, so the event loop keeps accepting
requests while the model computes. If a group fails, each of its jobs is retried alone so that only
the job that really fails gets the error; the worker itself never stops on an exception.

Under load the queue is bounded (``max_queue`` requests): one more is refused at once with 503 and
``Retry-After``, so neither latency nor memory grows without bound. A request is also refused when the inputs
already waiting would keep it queued longer than ``max_queue_wait_s`` at the recent pace of the model (seconds per
input, averaged over the last batches): the bound on latency then holds whatever the model's speed, where a bound
in requests alone means seconds for a fast model and minutes for a slow one. Each job has a deadline: a caller
past it gets 504 and its job is dropped, before the model if it was still queued, or with its rows
discarded if the model already had it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

from caveat.errors import CaveatError
from caveat.service import requestid
from caveat.service.errors import InferenceFailed, RequestError

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One request's inputs, its options (with a ``batch_key``) and the future its caller awaits."""

    inputs: Sequence
    options: object
    future: asyncio.Future = field(repr=False)
    deadline: float = float("inf")  # loop time after which nobody waits for the rows
    request_id: str | None = None  # for the log lines about this job


RunBatch = Callable[[list[Job]], list[list[dict]]]  # jobs with one batch_key -> rows of each job, in order


class MicroBatcher:
    """Group concurrent jobs into batches for ``run_batch``.

    Parameters
    ----------
    run_batch : computes the rows of a list of jobs that share a ``batch_key`` (runs in ``executor``).
    executor : a single-thread executor that owns the model.
    max_batch_size : most inputs gathered per batch (a larger single request runs alone).
    max_wait_s : longest wait, from the first job, for more jobs to join.
    max_queue : most jobs waiting for the model (None: unbounded); ``submit`` refuses one more with 503.
    max_queue_wait_s : refuse (503) a job whose estimated wait, the inputs ahead of it and its own times the
        recent seconds per input, is longer (None: no such limit; nothing is refused before a first batch ran).
    on_failure : called once per failed job (for a metric).
    on_shed : called with the reason ("queue_full", "queue_wait" or "deadline") for each job refused or dropped.
    """

    def __init__(
        self,
        run_batch: RunBatch,
        executor: Executor,
        *,
        max_batch_size: int,
        max_wait_s: float,
        max_queue: int | None = None,
        max_queue_wait_s: float | None = None,
        on_failure: Callable[[], None] | None = None,
        on_shed: Callable[[str], None] | None = None,
    ):
        if max_batch_size < 1 or max_wait_s < 0:
            raise ValueError(f"max_batch_size must be >= 1 and max_wait_s >= 0; got {max_batch_size}, {max_wait_s}")
        if max_queue is not None and max_queue < 1:
            raise ValueError(f"max_queue must be >= 1 (or None: unbounded); got {max_queue}")
        if max_queue_wait_s is not None and not max_queue_wait_s > 0:
            raise ValueError(f"max_queue_wait_s must be > 0 (or None: no limit); got {max_queue_wait_s}")
        self.run_batch, self.executor = run_batch, executor
        self.max_batch_size, self.max_wait_s, self.max_queue = max_batch_size, max_wait_s, max_queue
        self.max_queue_wait_s = max_queue_wait_s
        self.seconds_per_input: float | None = None  # the model's recent pace (moving average over batches)
        self._waiting = 0  # inputs queued and not yet taken by the worker
        self.on_failure = on_failure or (lambda: None)
        self.on_shed = on_shed or (lambda reason: None)
        self._queue: asyncio.Queue[Job] | None = None
        self._task: asyncio.Task | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> MicroBatcher:
        """Start the worker task on the running event loop."""
        if self.running:
            raise RuntimeError("the batcher is already running; call stop() first")
        self._queue, self._waiting = asyncio.Queue(self.max_queue or 0), 0
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
                job.future.set_exception(
                    RequestError("the service is shutting down: retry on another instance", 503, {"Retry-After": "1"})
                )

    async def submit(self, inputs: Sequence, options, *, timeout: float | None = None) -> list[dict]:
        """Queue one request and wait for its rows (one per input), at most ``timeout`` seconds (None: no
        limit). A full queue is a 503 with ``Retry-After`` at once; a request past its deadline is a 504."""
        if not self.running:
            raise RequestError(
                "the model worker is not running (starting or shutting down): retry once /readyz is 200",
                503,
                {"Retry-After": "1"},
            )
        loop = asyncio.get_running_loop()
        deadline = float("inf") if timeout is None else loop.time() + timeout
        job = Job(inputs, options, loop.create_future(), deadline, requestid.current())
        wait = None if self.seconds_per_input is None else (self._waiting + len(inputs)) * self.seconds_per_input
        if self.max_queue_wait_s is not None and wait is not None and wait > self.max_queue_wait_s:
            self.on_shed("queue_wait")
            raise RequestError(
                f"the service is at capacity (about {wait:.2g} s of work waiting for the model, over its limit of "
                f"{self.max_queue_wait_s:g} s): retry after the Retry-After seconds, or on another instance",
                503,
                {"Retry-After": str(max(1, math.ceil(wait - self.max_queue_wait_s)))},
            )
        try:
            self._queue.put_nowait(job)
            self._waiting += len(job.inputs)
        except asyncio.QueueFull:
            self.on_shed("queue_full")
            raise RequestError(
                f"the service is at capacity ({self.max_queue} requests waiting for the model): retry after "
                "the Retry-After seconds, or on another instance",
                503,
                {"Retry-After": "1"},
            ) from None
        try:
            # on timeout wait_for cancels the future: the worker skips a job whose future is done
            return await asyncio.wait_for(job.future, None if timeout is None else timeout)
        except asyncio.TimeoutError:  # the builtin TimeoutError from 3.11 on
            self.on_shed("deadline")
            log.warning("request %s: deadline of %.3g s passed; its rows are dropped", job.request_id, timeout)
            raise RequestError(
                f"no answer within the request's deadline of {timeout:.3g} s (the service is busy or the request "
                "is heavy): retry, send fewer inputs, or allow more time (timeout_s)",
                504,
            ) from None

    async def _gather(self, first: Job) -> tuple[list[Job], Job | None]:
        """``first`` plus the jobs that arrive within ``max_wait_s`` while they fit; the job that did not
        fit is returned to open the next batch."""
        loop = asyncio.get_running_loop()
        jobs, size = [first], len(first.inputs)
        deadline = loop.time() + self.max_wait_s
        while size < self.max_batch_size:
            try:
                job = self._take(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    job = self._take(await asyncio.wait_for(self._queue.get(), timeout))
                except asyncio.TimeoutError:  # the builtin TimeoutError from 3.11 on
                    break
            if size + len(job.inputs) > self.max_batch_size:
                return jobs, job
            jobs.append(job)
            size += len(job.inputs)
        return jobs, None

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        carry: Job | None = None
        while True:
            first = carry if carry is not None else self._take(await self._queue.get())
            carry = None
            jobs: list[Job] = [first]
            try:
                jobs, carry = await self._gather(first)
                groups: dict[tuple, list[Job]] = {}
                now = loop.time()
                for job in jobs:
                    if job.deadline <= now and not job.future.done():  # nobody will wait for these rows
                        job.future.cancel()
                    if not job.future.done():  # the caller may have gone away, or its deadline passed
                        groups.setdefault(job.options.batch_key, []).append(job)
                for group in groups.values():
                    await self._run_group(group)
            except asyncio.CancelledError:
                for job in jobs + ([carry] if carry else []):
                    if not job.future.done():
                        job.future.set_exception(
                            RequestError("the service is shutting down: retry", 503, {"Retry-After": "1"})
                        )
                raise
            except Exception as err:  # a bug here must not stop the worker: fail these jobs only
                log.exception("micro-batcher failed on %d jobs", len(jobs))
                for job in jobs:
                    self._fail(job, err)

    def _take(self, job: Job) -> Job:
        """``job``, just taken from the queue by the worker: its inputs no longer wait."""
        self._waiting -= len(job.inputs)
        return job

    def _paced(self, seconds: float, n_inputs: int) -> None:
        """Fold one batch's seconds per input into the moving average (weight 0.2 for the newest batch)."""
        pace = seconds / max(1, n_inputs)
        self.seconds_per_input = pace if self.seconds_per_input is None else 0.8 * self.seconds_per_input + 0.2 * pace

    async def _run_group(self, group: list[Job], *, retry: bool = False) -> None:
        """Run one batch; if it fails, run its jobs one by one (``retry``) so only a failing job fails. A retry's
        pace is not the model's: one input per pass is several times slower per input than a batch, and folding
        it in would shed requests (503 ``queue_wait``) for a while after every fault."""
        group = [job for job in group if not job.future.done()]  # a deadline may have passed while others ran
        if not group:
            return
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            results = await loop.run_in_executor(self.executor, self.run_batch, group)
            if not retry:
                self._paced(loop.time() - start, sum(len(job.inputs) for job in group))
        except Exception as err:
            if len(group) == 1:
                self._fail(group[0], err)
                return
            log.warning(
                "a batch of %d requests failed (%s: %s); retrying them one by one", len(group), type(err).__name__, err
            )
            for job in group:
                await self._run_group([job], retry=True)
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
        if isinstance(err, CaveatError):  # a refusal caveat words for the user (e.g. MC dropout on an ONNX run): 422
            job.future.set_exception(RequestError(str(err)))
            return
        log.error("request %s: inference failed on %d inputs", job.request_id, len(job.inputs), exc_info=err)
        job.future.set_exception(
            InferenceFailed(
                f"inference failed on this request's inputs ({type(err).__name__}); no other request was affected and "
                "the service keeps serving: retry, check these inputs (e.g. shorter or plainer text), or report the "
                "request_id (the service's log holds the error under it)"
            )
        )
