"""What the routes share: settings, the served run, the engine, the batcher, the metrics, the generator."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

from fastapi import Request

from caveat.errors import ConfigError, DataError
from caveat.models.rundir import Run
from caveat.service.batcher import MicroBatcher
from caveat.service.engine import Engine
from caveat.service.errors import InferenceFailed, RequestError
from caveat.service.generator import Generator
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
    loaded: bool = False
    error: str | None = None

    @property
    def calibrated(self) -> bool:
        return self.engine.calibration is not None

    @property
    def ready(self) -> bool:
        return self.loaded and self.batcher is not None and self.batcher.running

    def status(self) -> str:
        if self.error:
            return f"the model failed to load: {self.error}"
        if not self.loaded:
            return "loading the model"
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

    async def submit(self, inputs: Sequence, options) -> list[dict]:
        if not self.ready:
            raise RequestError(
                f"not ready ({self.status()}): retry once /readyz answers 200", 503, {"Retry-After": "1"}
            )
        return await self.batcher.submit(inputs, options)

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

    async def generate(self, question: str, context: str | None, options: GenerateOptions) -> dict:
        """One answer, generated in the model thread (one at a time there, between classifier batches)."""
        gen = self.need_generator()
        if not gen.loaded or self.executor is None:
            raise RequestError(
                f"not ready ({gen.status()}): retry once /readyz says generation is ready", 503, {"Retry-After": "1"}
            )
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.executor, gen.answer, question, context, options)
        except ConfigError as err:  # settings are checked before; what is left is an estimator this model cannot run
            raise RequestError(f"estimators: {err}") from None
        except DataError as err:  # e.g. a question the tokenizer leaves empty
            raise RequestError(f"question: {err}") from None
        except Exception as err:
            self.metrics.batch_failures.inc()
            log.error("generation failed on a question of %d characters", len(question), exc_info=err)
            raise InferenceFailed(
                f"generation failed on this question ({type(err).__name__}: {err}); the service "
                "keeps serving: check the question (e.g. shorter or plainer text) or report the "
                "error"
            ) from None


def get_state(request: Request) -> ServiceState:
    """FastAPI dependency: the state of the app that received the request."""
    return request.app.state.caveat
