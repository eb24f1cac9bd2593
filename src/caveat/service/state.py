"""What the routes share: settings, the served run, the engine, the batcher, the metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

from fastapi import Request

from caveat.models.rundir import Run
from caveat.service.batcher import MicroBatcher
from caveat.service.engine import Engine
from caveat.service.errors import RequestError
from caveat.service.metrics import Metrics
from caveat.service.settings import ServiceSettings

log = logging.getLogger(__name__)


@dataclass
class ServiceState:
    settings: ServiceSettings
    run: Run
    engine: Engine
    metrics: Metrics
    batcher: MicroBatcher | None = None
    loaded: bool = False
    error: str | None = None

    @property
    def calibrated(self) -> bool:
        return self.engine.caveats is not None

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
        """Load the model in the model thread, then start the batcher (readiness follows)."""
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self.engine.load)
        except Exception as err:  # reported by /readyz and by 503s; the process stays up to say so
            self.error = f"{type(err).__name__}: {err}"
            log.exception("loading %s failed", self.run.path)
            return
        self.loaded = True
        self.batcher.start()
        log.info("serving %s (%s, %s)", self.run.path, self.run.task.value, "calibrated" if self.calibrated else "uncalibrated")

    async def submit(self, inputs: Sequence, options) -> list[dict]:
        if not self.ready:
            raise RequestError(f"not ready ({self.status()}): retry once /readyz answers 200", 503, {"Retry-After": "1"})
        return await self.batcher.submit(inputs, options)


def get_state(request: Request) -> ServiceState:
    """FastAPI dependency: the state of the app that received the request."""
    return request.app.state.caveat
