"""``caveat serve --workers N``: N worker processes on one port, each with its own model.

The parent builds the app once to check the settings (the same errors as with one worker, before the port is
bound; the model is not loaded), makes a fresh metrics folder (``PROMETHEUS_MULTIPROC_DIR``), binds the port and
starts N processes with ``spawn``. Each worker gets the settings and the listening socket as its arguments,
builds its own app and model and serves with ``server.run``, so SIGTERM drains each worker as it drains one
process. The parent passes signals on: SIGTERM or Ctrl-C drains and stops every worker, then the parent exits 0;
SIGHUP makes each worker reload its calibration. A worker that dies is replaced (its live gauges are dropped
with ``mark_process_dead``); one that dies before its app was built stops the service.

With ``--log-inputs PATH`` worker i writes ``PATH`` with ``.worker<i>`` before its suffix
(``inputs.jsonl`` -> ``inputs.worker1.jsonl``): one writer per file, so rotation stays safe.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event

import uvicorn
from prometheus_client import multiprocess

from caveat.errors import CaveatError
from caveat.service.app import create_app
from caveat.service.metrics import MULTIPROC_DIR
from caveat.service.server import run as run_server
from caveat.service.settings import ServiceSettings

log = logging.getLogger(__name__)
SPAWN = multiprocessing.get_context("spawn")  # a fresh interpreter: no torch threads or locks copied by fork
POLL_S = 0.2


def worker_settings(settings: ServiceSettings, index: int) -> ServiceSettings:
    """The settings of worker ``index`` (1..N): the same, with an input log of its own."""
    path = settings.log_inputs
    if path is None:
        return settings
    return settings.model_copy(update={"log_inputs": path.with_name(f"{path.stem}.worker{index}{path.suffix}")})


def serve_workers(settings: ServiceSettings) -> None:
    """Serve ``settings.run_dir`` from ``settings.workers`` processes until SIGTERM or Ctrl-C, as the module
    says; returns once every worker has exited. Raises ``ConfigError`` for settings one worker would refuse,
    and ``CaveatError`` when a worker dies before it could serve."""
    check = create_app(worker_settings(settings, 1))  # refuses a bad run, policy or log here, before binding
    if check.state.caveat.input_log is not None:
        check.state.caveat.input_log.close()
    del check
    config = uvicorn.Config("caveat.service:create_app", host=settings.host, port=settings.port)
    with tempfile.TemporaryDirectory(prefix="caveat-metrics-") as folder, _environ(MULTIPROC_DIR, folder):
        sock = config.bind_socket()
        try:
            Supervisor(settings, sock, folder).run()
        finally:
            sock.close()


@contextlib.contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    """``name=value`` in this process's environment (inherited by the workers it starts), then as before."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


class Supervisor:
    """Starts the workers, passes signals on to them, replaces one that dies, and waits for all to exit
    (``run``, in the main thread: it handles the signals)."""

    def __init__(self, settings: ServiceSettings, sock: socket.socket, folder: str):
        self.settings, self.sock, self.folder = settings, sock, folder
        self.workers: list[SpawnProcess | None] = [None] * settings.workers
        self.built: list[Event | None] = [None] * settings.workers  # set by each worker once its app is built
        self.stopping = False  # set once: each worker gets one SIGTERM (a second one would cut its delay short)

    def start(self, index: int) -> None:
        self.built[index] = built = SPAWN.Event()
        proc = SPAWN.Process(
            target=work,
            args=(worker_settings(self.settings, index + 1), self.sock, built),
            name=f"caveat-worker-{index + 1}",
        )
        proc.start()
        self.workers[index] = proc
        if self.stopping:  # a signal came while it started, after signal_all had passed it by
            os.kill(proc.pid, signal.SIGTERM)
        log.info("started worker %d of %d (pid %d)", index + 1, len(self.workers), proc.pid)

    def signal_all(self, sig: int) -> None:
        for proc in self.workers:
            if proc is not None and proc.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, sig)

    def stop(self) -> None:
        """SIGTERM to every worker, once: each drains as one process would."""
        if not self.stopping:
            self.stopping = True
            self.signal_all(signal.SIGTERM)

    def on_signal(self, sig: int, frame) -> None:
        if sig == getattr(signal, "SIGHUP", None):
            self.signal_all(sig)  # each worker reloads its calibration
        else:
            self.stop()  # after Ctrl-C too, which reached them already: a SIGTERM after it does not force an exit

    def run(self) -> None:
        handled = [s for s in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGHUP", None)) if s is not None]
        previous = {s: signal.signal(s, self.on_signal) for s in handled}
        try:
            for index in range(len(self.workers)):
                self.start(index)
            while not self.stopping:
                time.sleep(POLL_S)
                self.replace_dead()
        finally:
            self.stop()  # after an error too: no worker is left behind
            for proc in self.workers:
                if proc is not None:
                    proc.join()
                    multiprocess.mark_process_dead(proc.pid, self.folder)
            for s, handler in previous.items():
                signal.signal(s, handler)
        log.info("all %d workers have exited", len(self.workers))

    def replace_dead(self) -> None:
        for index, proc in enumerate(self.workers):
            if proc.is_alive() or self.stopping:
                continue
            proc.join()
            multiprocess.mark_process_dead(proc.pid, self.folder)
            if not self.built[index].is_set():  # it would fail the same way again
                raise CaveatError(
                    f"worker {index + 1} of caveat serve (pid {proc.pid}) exited with status {proc.exitcode} "
                    "before its app was built; its log is above: fix what it says, or try one worker (--workers 1)"
                )
            log.warning(
                "worker %d (pid %d) exited with status %s; starting another", index + 1, proc.pid, proc.exitcode
            )
            self.start(index)


def work(settings: ServiceSettings, sock: socket.socket, built: Event) -> None:
    """One worker, in a process of its own: its app and model, serving on the parent's listening socket."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")  # as the CLI's
    app = create_app(settings)
    built.set()
    run_server(app, settings, sockets=[sock])
