"""What the routes share: settings, the served run, the engine, the batcher, the metrics, the generator,
the input log; and the calibration reload."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

from fastapi import Request

from caveat.errors import ConfigError, DataError
from caveat.models.rundir import Run
from caveat.service import requestid
from caveat.service.batcher import MicroBatcher
from caveat.service.engine import Engine, reread_calibration
from caveat.service.errors import InferenceFailed, RequestError
from caveat.service.generator import Generator
from caveat.service.inputlog import InputLog, log_entries
from caveat.service.metrics import Metrics
from caveat.service.settings import ServiceSettings
from caveat.service.validation import GenerateOptions

log = logging.getLogger(__name__)


@dataclass
class ServiceState:
    settings: ServiceSettings
    run: Run
    engine: Engine
    metrics: Metrics
    batcher: MicroBatcher | None = None
    generator: Generator | None = None  # /v1/generate's language model (None: the service has none)
    executor: Executor | None = None  # the one model thread, shared by the batcher and the generator
    input_log: InputLog | None = None  # --log-inputs
    loaded: bool = False
    error: str | None = None
    draining: bool = False  # a shutdown signal came: /readyz is 503, requests are still served
    _reloading: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)  # one reload at a time

    @property
    def calibrated(self) -> bool:
        return self.engine.calibration is not None

    @property
    def serving(self) -> bool:
        """The model is loaded and its worker runs: requests are answered."""
        return self.loaded and self.batcher is not None and self.batcher.running

    @property
    def ready(self) -> bool:
        """Serving and not shutting down: what /readyz tells a load balancer."""
        return self.serving and not self.draining

    def status(self) -> str:
        if self.error:
            return f"the model failed to load: {self.error}"
        if not self.loaded:
            return "loading the model"
        if self.draining:
            return "shutting down: finishing the requests in flight, send new ones elsewhere"
        return "ready" if self.ready else "the model worker is not running"

    async def load(self, executor: Executor) -> None:
        """Load the model in the model thread, then start the batcher (readiness follows); then the
        language model of /v1/generate, if any, in the same thread."""
        self.executor = executor
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self.engine.load)
        except Exception as err:  # reported by /readyz and by 503s; the process stays up to say so
            self.error = f"{type(err).__name__}: {err}"
            log.exception("loading %s failed", self.run.path)
        else:
            self.loaded = True
            self.batcher.start()
            log.info(
                "serving %s (%s, %s)",
                self.run.path,
                self.run.task.value,
                "calibrated" if self.calibrated else "uncalibrated",
            )
        if self.generator is not None:
            await self._load_generator(executor)

    async def _load_generator(self, executor: Executor) -> None:
        gen = self.generator
        try:
            await asyncio.get_running_loop().run_in_executor(executor, gen.load)
        except Exception as err:  # /readyz's generation field and /v1/generate's 503 say so
            gen.error = f"{type(err).__name__}: {err}"
            log.exception("loading the language model %s failed", gen.name)
            return
        log.info(
            "generating with %s (%s)",
            gen.lm.name,
            f"policy {self.settings.generation_policy}" if gen.policy else "no policy: no answer/abstain decisions",
        )

    def log_inputs(self, rows: list[dict]) -> None:
        """Queue one input-log line per served row (nothing without ``--log-inputs``); never waits for the disk,
        and never fails the request whose rows these are."""
        if self.input_log is None:
            return
        try:
            self.input_log.write(log_entries(rows, score=self.engine.score))
        except Exception as err:  # the answer is computed: losing its log line must not lose it too
            self.metrics.input_log_failures.inc(len(rows))
            log.error("could not queue %d input-log lines (%s: %s)", len(rows), type(err).__name__, err)

    async def reload(self, trigger: str) -> dict:
        """Read the run's calibration again and serve it from the next batch on; ``trigger`` says who asked
        (for the log). The new calibration is built in a worker thread, then swapped in by the model thread
        between two batches, so no request fails and each batch uses one calibration throughout. A
        calibration that cannot be read leaves the live one in place: counted, logged, and a 409."""
        async with self._reloading:
            loop, live = asyncio.get_running_loop(), self.engine.fingerprint
            read = functools.partial(reread_calibration, self.run, allow_uncalibrated=self.settings.allow_uncalibrated)
            try:
                calibration, fingerprint = await loop.run_in_executor(None, read)
            except Exception as err:
                self.metrics.calibration_reloads.labels(outcome="failed").inc()
                log.error(
                    "%s: reloading the calibration of %s failed, still serving %s: %s",
                    trigger,
                    self.run.path,
                    live,
                    err,
                    exc_info=not isinstance(err, (OSError, ValueError, KeyError)),
                )
                raise RequestError(
                    f"the calibration of {self.run.path} could not be reloaded ({type(err).__name__}: {err}); the "
                    f"live calibration {live} keeps serving: fix the run (e.g. caveat calibrate {self.run.path}) and "
                    "reload again",
                    409,
                ) from None
            if self.executor is None:  # the model thread has not started: nothing is in flight
                self.engine.use(calibration, fingerprint)
            else:
                await loop.run_in_executor(self.executor, self.engine.use, calibration, fingerprint)
            self.metrics.calibration_reloads.labels(outcome="ok").inc()
            log.info("%s: serving calibration %s of %s (was %s)", trigger, fingerprint, self.run.path, live)
            return {"calibration": fingerprint, "previous": live, "calibrated": calibration is not None}

    async def submit(self, inputs: Sequence, options, *, timeout: float | None = None) -> list[dict]:
        """The rows of ``inputs`` from the batcher, within ``timeout`` seconds (default: the settings'
        ``request_timeout_s``). Still served while draining: a load balancer may send a few more."""
        if not self.serving:
            raise RequestError(
                f"not ready ({self.status()}): retry once /readyz answers 200", 503, {"Retry-After": "1"}
            )
        return await self.batcher.submit(inputs, options, timeout=timeout or self.settings.request_timeout_s)

    def need_generator(self) -> Generator:
        """The generator, or a 404 that says how to start a service with one."""
        if self.generator is None:
            raise RequestError(
                "this service has no language model for /v1/generate: start it with "
                "caveat serve RUN --lm default (or a local model folder), or with "
                "--generation-policy FILE from caveat generate-calibrate",
                404,
            )
        return self.generator

    async def generate(
        self, question: str, context: str | None, options: GenerateOptions, *, timeout: float | None = None
    ) -> dict:
        """One answer, generated in the model thread (one at a time there, between classifier batches), within
        ``timeout`` seconds (default: the settings' ``request_timeout_s``). Past it a 504: a question still
        waiting for the model thread is dropped before it starts, one already generating finishes and its
        answer is discarded."""
        gen = self.need_generator()
        if not gen.loaded or self.executor is None:
            raise RequestError(
                f"not ready ({gen.status()}): retry once /readyz says generation is ready", 503, {"Retry-After": "1"}
            )
        loop, timeout = asyncio.get_running_loop(), timeout or self.settings.request_timeout_s
        try:
            # on timeout wait_for cancels the executor's future: a job the model thread has not started never runs
            return await asyncio.wait_for(
                loop.run_in_executor(self.executor, gen.answer, question, context, options), timeout
            )
        except TimeoutError:
            self.metrics.shed.labels(reason="deadline").inc()
            log.warning("request %s: deadline of %.3g s passed; its answer is dropped", requestid.current(), timeout)
            raise RequestError(
                f"no answer within the request's deadline of {timeout:.3g} s (the service is busy or the question "
                "is heavy): retry, ask for fewer samples or max_new_tokens, or allow more time (timeout_s)",
                504,
            ) from None
        except ConfigError as err:  # settings are checked before; what is left is an estimator this model cannot run
            raise RequestError(f"estimators: {err}") from None
        except DataError as err:  # e.g. a question the tokenizer leaves empty
            raise RequestError(f"question: {err}") from None
        except Exception as err:
            self.metrics.batch_failures.inc()
            log.error("generation failed on a question of %d characters", len(question), exc_info=err)
            raise InferenceFailed(
                f"generation failed on this question ({type(err).__name__}); the service keeps serving: retry, check "
                "the question (e.g. shorter or plainer text), or report the request_id (the log holds the error)"
            ) from None


def get_state(request: Request) -> ServiceState:
    """FastAPI dependency: the state of the app that received the request."""
    return request.app.state.caveat
