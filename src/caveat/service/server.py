"""The app under uvicorn, with a graceful shutdown a load balancer can follow.

On SIGTERM (or Ctrl-C) /readyz turns 503 at once; requests are still served for ``shutdown_delay_s``, so a
load balancer that polls /readyz stops sending; then uvicorn stops accepting connections, waits at most
``shutdown_grace_s`` for the requests in flight, runs the app's shutdown (the input log is flushed) and the
process exits 0. A second signal during the delay starts the shutdown at once.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading

import uvicorn
from fastapi import FastAPI

from caveat.service.settings import ServiceSettings
from caveat.service.state import ServiceState

log = logging.getLogger(__name__)


class Server(uvicorn.Server):
    """uvicorn's server, telling ``state`` that a shutdown began (its /readyz goes 503) and holding the
    shutdown back ``delay_s`` seconds."""

    def __init__(self, config: uvicorn.Config, state: ServiceState, *, delay_s: float = 0.0):
        super().__init__(config)
        self.state, self.delay_s = state, delay_s
        self._timer: threading.Timer | None = None

    def handle_exit(self, sig: int, frame) -> None:
        self.state.draining = True
        if self.delay_s > 0 and self._timer is None:
            log.info(
                "%s: /readyz is 503; serving %.3g s more, then finishing the requests in flight",
                signal.Signals(sig).name,
                self.delay_s,
            )
            self._timer = threading.Timer(self.delay_s, super().handle_exit, (sig, frame))
            self._timer.daemon = True
            self._timer.start()
            return
        if self._timer is not None:
            self._timer.cancel()  # a second signal: no more waiting
        super().handle_exit(sig, frame)


def _ignore(sig: int, frame) -> None:
    """Once uvicorn has shut down gracefully it raises the signal it caught again; ending by it would make the
    exit status say "killed" (143) after a clean shutdown."""


def run(app: FastAPI, settings: ServiceSettings, *, sockets: list[socket.socket] | None = None) -> None:
    """Serve ``app`` (from ``create_app(settings)``) on ``settings.host:port`` until SIGTERM or Ctrl-C, then
    shut down as the module says and return (exit status 0). A worker of ``caveat serve --workers N`` passes
    the parent's listening ``sockets`` instead of binding the port itself."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.access_log,
        timeout_graceful_shutdown=settings.shutdown_grace_s,
        limit_concurrency=settings.max_connections,
    )
    server = Server(config, app.state.caveat, delay_s=settings.shutdown_delay_s)
    main = threading.current_thread() is threading.main_thread()  # signal handlers live in the main thread only
    previous = signal.signal(signal.SIGTERM, _ignore) if main else None
    try:
        server.run(sockets=sockets)
    except KeyboardInterrupt:  # Ctrl-C, raised again after the graceful shutdown
        pass
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
