"""Serving the API with uvicorn: one process, or several each with its own SO_REUSEPORT listener.

Separate processes with their own listening sockets are balanced by the kernel on every
connection; uvicorn's `--workers` share one accept queue, which measured here handed all of a few
long-lived keep-alive connections to a single worker in 5 runs of 15 (`reference/performance.md`).
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import signal
import socket
import sys
import tempfile
from types import FrameType

import uvicorn
from fastapi import FastAPI

from controlplane.api.app import create_app
from controlplane.config import Settings
from controlplane.errors import ConfigurationError
from controlplane.observability import jsonlog
from controlplane.observability.metrics import MULTIPROCESS_ENV

_BACKLOG = 2048


def listen(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigurationError(
                f"port {port} is already in use on {host}; set CONTROLPLANE_PORT"
            ) from exc
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc}") from exc
    sock.listen(_BACKLOG)
    sock.set_inheritable(True)
    return sock


def run_worker(settings: Settings, *, reuse_port: bool) -> None:
    """Serve in this process until SIGINT/SIGTERM (uvicorn's graceful shutdown)."""
    jsonlog.configure(settings.log_level)
    sock = listen(settings.host, settings.port, reuse_port=reuse_port)
    config = uvicorn.Config(
        create_app(settings),
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_config=None,
        access_log=False,  # our middleware logs each request, with its request id
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )
    _Server(config).run(sockets=[sock])


class _Server(uvicorn.Server):
    """uvicorn, telling the app as soon as a shutdown starts (`app.state.stopping`)."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        app = self.config.app
        if isinstance(app, FastAPI):
            app.state.stopping.set()
        super().handle_exit(sig, frame)


def serve(settings: Settings) -> int:
    """Serve with `settings.workers` processes; returns the exit code."""
    if settings.workers == 1:
        run_worker(settings, reuse_port=False)
        return 0
    # Fail early and clearly if the port is taken by something that is not one of our workers.
    listen(settings.host, settings.port, reuse_port=True).close()
    with tempfile.TemporaryDirectory(prefix="controlplane-metrics-") as shared_metrics:
        # prometheus_client's multiprocess switch, read when a worker first imports it.
        os.environ[MULTIPROCESS_ENV] = shared_metrics
        return _run_workers(settings)


def _run_workers(settings: Settings) -> int:
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=run_worker, args=(settings,), kwargs={"reuse_port": True})
        for _ in range(settings.workers)
    ]
    for worker in workers:
        worker.start()
    stopping = False

    def stop_workers(_signum: int = signal.SIGTERM, _frame: FrameType | None = None) -> None:
        # uvicorn shuts down gracefully on SIGTERM as on SIGINT.
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.is_alive():
                worker.terminate()

    signal.signal(signal.SIGINT, stop_workers)
    signal.signal(signal.SIGTERM, stop_workers)
    code = 0
    while any(worker.is_alive() for worker in workers):
        for worker in workers:
            worker.join(timeout=0.2)
            if not stopping and not worker.is_alive() and worker.exitcode != 0:
                print(
                    f"controlplane serve: a worker exited with code {worker.exitcode}; stopping",
                    file=sys.stderr,
                )
                stop_workers()
                code = 1
    return code
