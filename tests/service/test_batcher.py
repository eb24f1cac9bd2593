"""MicroBatcher on a fake model: concurrent jobs share batches, each caller gets its own rows, and a
failure stays with the job that caused it."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from caveat.service.batcher import MicroBatcher
from caveat.service.errors import InferenceFailed, RequestError


@dataclass(frozen=True)
class Opts:
    key: str = "a"

    @property
    def batch_key(self):
        return self.key


class FakeModel:
    """Echoes its inputs; records each batch; raises on the input "boom"; can be slow."""

    def __init__(self, delay: float = 0.0):
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()
        self.delay = delay

    def __call__(self, jobs) -> list[list[dict]]:
        inputs = [x for job in jobs for x in job.inputs]
        self.batches.append(inputs)
        self.threads.add(threading.current_thread().name)
        if "boom" in inputs:
            raise RuntimeError("planted failure")
        time.sleep(self.delay)
        return [[{"text": x, "key": job.options.key} for x in job.inputs] for job in jobs]


async def _serve(model, calls, *, max_batch_size=64, max_wait_s=0.05):
    with ThreadPoolExecutor(1, thread_name_prefix="model") as executor:
        batcher = MicroBatcher(model, executor, max_batch_size=max_batch_size, max_wait_s=max_wait_s).start()
        try:
            return await asyncio.gather(
                *(batcher.submit(inputs, opts) for inputs, opts in calls), return_exceptions=True
            )
        finally:
            await batcher.stop()


def test_concurrent_jobs_share_batches_and_get_their_own_rows():
    model = FakeModel()
    calls = [([f"text {i}", f"more {i}"], Opts()) for i in range(20)]
    results = asyncio.run(_serve(model, calls))
    assert len(model.batches) < len(calls)  # batched: fewer forward passes than requests
    for (inputs, _), rows in zip(calls, results):
        assert [r["text"] for r in rows] == inputs
    assert model.threads == {"model_0"}  # one thread owns the model


def test_batches_respect_max_batch_size_and_keys():
    model = FakeModel()
    calls = [([f"t{i}"] * 3, Opts("a" if i % 2 else "b")) for i in range(12)]
    results = asyncio.run(_serve(model, calls, max_batch_size=7))
    assert all(len(b) <= 7 for b in model.batches)
    assert sum(map(len, model.batches)) == 36
    for (inputs, opts), rows in zip(calls, results):
        assert [r["key"] for r in rows] == [opts.key] * 3 and [r["text"] for r in rows] == inputs


def test_a_request_larger_than_the_batch_runs_alone():
    model = FakeModel()
    results = asyncio.run(_serve(model, [(["x"] * 10, Opts()), (["y"], Opts())], max_batch_size=4))
    assert [len(r) for r in results] == [10, 1]
    assert ["x"] * 10 in model.batches


def test_a_failure_fails_only_its_own_request_and_the_worker_keeps_serving():
    model = FakeModel()
    calls = [(["fine 1"], Opts()), (["boom"], Opts()), (["fine 2"], Opts())]

    async def scenario():
        with ThreadPoolExecutor(1) as executor:
            batcher = MicroBatcher(model, executor, max_batch_size=8, max_wait_s=0.05).start()
            first = await asyncio.gather(*(batcher.submit(i, o) for i, o in calls), return_exceptions=True)
            after = await batcher.submit(["later"], Opts())
            running = batcher.running
            await batcher.stop()
            return first, after, running

    first, after, running = asyncio.run(scenario())
    assert first[0][0]["text"] == "fine 1" and first[2][0]["text"] == "fine 2"
    assert isinstance(first[1], InferenceFailed)
    assert (
        "RuntimeError" in str(first[1]) and "planted failure" not in str(first[1]) and "keeps serving" in str(first[1])
    )
    assert after[0]["text"] == "later" and running


def test_a_cancelled_caller_does_not_break_the_batch():
    model = FakeModel(delay=0.05)

    async def scenario():
        with ThreadPoolExecutor(1) as executor:
            batcher = MicroBatcher(model, executor, max_batch_size=8, max_wait_s=0.02).start()
            gone = asyncio.ensure_future(batcher.submit(["gone"], Opts()))
            await asyncio.sleep(0)
            gone.cancel()
            rows = await batcher.submit(["stays"], Opts())
            await batcher.stop()
            return rows

    assert asyncio.run(scenario())[0]["text"] == "stays"


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="max_batch_size must be >= 1"):
        MicroBatcher(FakeModel(), None, max_batch_size=0, max_wait_s=0.0)


class BlockedModel(FakeModel):
    """Holds the model thread until ``release`` is set; ``entered`` says a batch is inside."""

    def __init__(self):
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, jobs):
        self.entered.set()
        assert self.release.wait(10)
        return super().__call__(jobs)


async def _until(event: threading.Event) -> None:
    while not event.is_set():
        await asyncio.sleep(0.005)


def test_a_full_queue_refuses_at_once_with_503_and_retry_after():
    model, shed = BlockedModel(), []

    async def scenario():
        with ThreadPoolExecutor(1) as executor:
            batcher = MicroBatcher(
                model, executor, max_batch_size=1, max_wait_s=0.0, max_queue=2, on_shed=shed.append
            ).start()
            held = asyncio.ensure_future(batcher.submit(["held"], Opts()))  # inside the model
            await _until(model.entered)
            queued = [asyncio.ensure_future(batcher.submit([f"q{i}"], Opts())) for i in range(2)]
            await asyncio.sleep(0.01)
            with pytest.raises(RequestError, match="at capacity \\(2 requests waiting") as err:
                await batcher.submit(["one too many"], Opts())
            model.release.set()
            done = await asyncio.gather(held, *queued)
            await batcher.stop()
            return err.value, done

    err, done = asyncio.run(scenario())
    assert err.status == 503 and err.headers == {"Retry-After": "1"}
    assert [rows[0]["text"] for rows in done] == ["held", "q0", "q1"]  # nothing queued was lost
    assert shed == ["queue_full"] and ["one too many"] not in model.batches


def test_a_request_whose_deadline_passes_in_the_queue_never_reaches_the_model():
    model, shed = BlockedModel(), []

    async def scenario():
        with ThreadPoolExecutor(1) as executor:
            batcher = MicroBatcher(model, executor, max_batch_size=1, max_wait_s=0.0, on_shed=shed.append).start()
            held = asyncio.ensure_future(batcher.submit(["held"], Opts()))
            await _until(model.entered)
            with pytest.raises(RequestError, match="deadline of 0.05 s") as err:
                await batcher.submit(["late"], Opts(), timeout=0.05)
            model.release.set()
            after = await batcher.submit(["after"], Opts(), timeout=5)
            first = await held
            await batcher.stop()
            return err.value, first, after

    err, first, after = asyncio.run(scenario())
    assert err.status == 504 and shed == ["deadline"]
    assert (first[0]["text"], after[0]["text"]) == ("held", "after")
    assert model.batches == [["held"], ["after"]]  # "late" was dropped before the model


def test_a_request_whose_deadline_passes_in_the_model_has_its_rows_discarded():
    model = FakeModel(delay=0.3)

    async def scenario():
        with ThreadPoolExecutor(1) as executor:
            batcher = MicroBatcher(model, executor, max_batch_size=8, max_wait_s=0.0).start()
            with pytest.raises(RequestError, match="deadline") as err:
                await batcher.submit(["slow"], Opts(), timeout=0.05)
            after = await batcher.submit(["next"], Opts())  # the worker waits for the model, then serves on
            running = batcher.running
            await batcher.stop()
            return err.value, after, running

    err, after, running = asyncio.run(scenario())
    assert err.status == 504 and after[0]["text"] == "next" and running
    assert model.batches == [["slow"], ["next"]]


def test_a_bad_queue_bound_is_refused():
    with pytest.raises(ValueError, match="max_queue must be >= 1"):
        MicroBatcher(FakeModel(), None, max_batch_size=1, max_wait_s=0.0, max_queue=0)


def test_jobs_still_queued_at_stop_get_503_with_retry_after():
    model = BlockedModel()

    async def scenario():
        with ThreadPoolExecutor(1) as executor:
            batcher = MicroBatcher(model, executor, max_batch_size=1, max_wait_s=0.0, max_queue=4).start()
            held = asyncio.ensure_future(batcher.submit(["held"], Opts()))  # inside the model
            await _until(model.entered)
            queued = asyncio.ensure_future(batcher.submit(["queued"], Opts()))
            await asyncio.sleep(0.01)
            stopping = asyncio.ensure_future(batcher.stop())
            await asyncio.sleep(0.01)
            model.release.set()
            await stopping
            return await asyncio.gather(held, queued, return_exceptions=True)

    _, refused = asyncio.run(scenario())
    assert isinstance(refused, RequestError) and refused.status == 503
    assert refused.headers == {"Retry-After": "1"}  # a client told when to come back, like a full queue's 503


@pytest.mark.parametrize("limit", [2.5, None])
def test_a_request_that_would_wait_too_long_at_the_models_pace_is_refused_at_once(limit):
    model, shed = FakeModel(delay=0.05), []  # 0.05 s per batch of one input

    async def scenario():
        with ThreadPoolExecutor(1) as executor:
            batcher = MicroBatcher(model, executor, max_batch_size=1, max_wait_s=0.0, on_shed=shed.append).start()
            assert batcher.seconds_per_input is None
            await batcher.submit(["warm-up"], Opts())  # the first batch sets the pace
            pace = batcher.seconds_per_input
            batcher.max_queue_wait_s = None if limit is None else limit * pace  # room for 2 inputs, not 3
            out = await asyncio.gather(*(batcher.submit([f"q{i}"], Opts()) for i in range(3)), return_exceptions=True)
            await batcher.stop()
            return pace, out

    pace, out = asyncio.run(scenario())
    assert 0.04 < pace < 1.0
    if limit is None:  # no wait limit: all three are served
        assert [rows[0]["text"] for rows in out] == ["q0", "q1", "q2"] and shed == []
        return
    assert [rows[0]["text"] for rows in out[:2]] == ["q0", "q1"]  # 1 then 2 inputs' worth of waiting: in time
    refused = out[2]  # 3 inputs' worth, at the pace of the last batches, is over 2.5: refused before queueing
    assert isinstance(refused, RequestError) and refused.status == 503 and refused.headers == {"Retry-After": "1"}
    assert "over its limit" in str(refused) and shed == ["queue_wait"] and ["q2"] not in model.batches


def test_retrying_a_failed_batch_one_by_one_does_not_set_the_models_pace():
    model = FakeModel(delay=0.02)  # 0.02 s a pass: a batch of 8 is 0.0025 s an input, a retry alone 0.02

    async def scenario():
        with ThreadPoolExecutor(1) as executor:
            batcher = MicroBatcher(model, executor, max_batch_size=8, max_wait_s=0.05).start()
            await asyncio.gather(*(batcher.submit([f"w{i}"], Opts()) for i in range(8)))  # one batch of 8
            paced = batcher.seconds_per_input
            calls = [batcher.submit(["boom" if i == 0 else f"x{i}"], Opts()) for i in range(8)]
            out = await asyncio.gather(*calls, return_exceptions=True)  # fails as a batch, then 8 passes of one
            after = batcher.seconds_per_input
            await batcher.stop()
            return paced, after, out

    paced, after, out = asyncio.run(scenario())
    assert isinstance(out[0], InferenceFailed) and [rows[0]["text"] for rows in out[1:]] == [
        f"x{i}" for i in range(1, 8)
    ]
    assert len(model.batches) == 1 + 1 + 8  # the batch of 8, the failed batch, and its 8 retries
    assert after == paced < 0.01  # the retries (0.02 s an input) left the batch pace as it was
