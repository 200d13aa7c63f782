"""Real processes for the tests: Redis, OPA and the control plane API, each on a free port.

Each is a thin wrapper around `subprocess.Popen` that can wait until ready, pause (SIGSTOP),
resume (SIGCONT), kill (SIGKILL) and restart on the same port with the same state, so that tests
provoke faults with the real component instead of imitating them. How each component is
configured comes from `controlplane.stack`, the same code `controlplane up` runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import redis

from controlplane.config import DEFAULT_OPA_CACHE
from controlplane.stack.opa_server import opa_argv, opa_config
from controlplane.stack.redis_server import redis_argv

REPO = Path(__file__).resolve().parents[2]
BUNDLE_TEMPLATE = REPO / "bundles" / "governance"
POLICY_DIR = REPO / "rego"
OPA_BIN = Path(os.environ.get("CONTROLPLANE_OPA_BIN") or DEFAULT_OPA_CACHE)
KEY_PASSPHRASE = "test passphrase for grant keys"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Process:
    """One child process with its log in a file under the test's directory."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        workdir: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.log_path = workdir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd
        )
        log.close()

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def signal(self, sig: int) -> None:
        assert self.popen is not None
        self.popen.send_signal(sig)

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGCONT)  # a paused process cannot die gracefully
            self.popen.kill()
            self.popen.wait(10)

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGCONT)
        self.popen.terminate()
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class RedisServer(Process):
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.data_dir = workdir / f"redis-{self.port}"
        self.data_dir.mkdir(parents=True)
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed (make test installs it)"
        super().__init__(
            f"redis-{self.port}",
            redis_argv(binary, port=self.port, data_dir=self.data_dir),
            workdir=workdir,
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def start(self) -> None:
        super().start()

        def answers() -> bool:
            with contextlib.suppress(redis.RedisError), self.client() as client:
                return bool(client.ping())
            return False

        wait_until(answers, timeout=15, what=f"Redis on {self.port}")


class OpaServer(Process):
    """OPA pulling the signed `governance` bundle from an API, locked with token authentication;
    or, without `verification_key`, an OPA with no policy at all (and so unlocked)."""

    def __init__(
        self,
        workdir: Path,
        *,
        port: int,
        api_url: str,
        opa_token: str,
        verification_key: dict[str, str] | None,
        polling: dict[str, int] | None = None,
    ) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        self.home = workdir / f"opa-{self.port}"
        self.home.mkdir(parents=True, exist_ok=True)
        self.token_path = self.home / "opa.token"
        self.token_path.write_text(opa_token)
        self.config_path = self.home / "config.json"
        self.config = opa_config(
            api_url=api_url,
            token_path=self.token_path,
            instance=f"test-{self.port}",
            verification_key=verification_key,
            polling=polling,
        )
        self.config_path.write_text(json.dumps(self.config))
        argv = opa_argv(
            OPA_BIN, port=self.port, config_file=self.config_path, locked=bool(verification_key)
        )
        super().__init__(f"opa-{self.port}", argv, workdir=workdir, cwd=self.home)

    def start(self) -> None:
        super().start()

        def healthy() -> bool:
            if self.popen is not None and self.popen.poll() is not None:
                raise AssertionError(f"OPA exited:\n{self.log()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{self.url}/health?bundles", timeout=1).status_code == 200
            return False

        wait_until(healthy, timeout=20, what=f"OPA on {self.port}")


class ApiServer(Process):
    """`python -m controlplane serve` with settings from environment variables."""

    def __init__(
        self, workdir: Path, *, redis_url: str, opa_url: str, admin_token: str, **settings: str
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "CONTROLPLANE_PORT": str(self.port),
            "CONTROLPLANE_REDIS_URL": redis_url,
            "CONTROLPLANE_OPA_URL": opa_url,
            "CONTROLPLANE_ADMIN_TOKEN": admin_token,
            "CONTROLPLANE_OPA_DECISION_TIMEOUT_SECONDS": "0.5",
            "CONTROLPLANE_REDIS_TIMEOUT_SECONDS": "0.5",
            "CONTROLPLANE_TOKEN_CACHE_SECONDS": "0.2",
            "CONTROLPLANE_KEY_PASSPHRASE": KEY_PASSPHRASE,
            "CONTROLPLANE_PUBLIC_URL": self.url,
        }
        env.update({f"CONTROLPLANE_{k.upper()}": v for k, v in settings.items()})
        super().__init__(
            f"api-{self.port}",
            [sys.executable, "-m", "controlplane", "serve"],
            workdir=workdir,
            env=env,
        )

    def start(self) -> None:
        super().start()

        def alive() -> bool:
            if self.popen is not None and self.popen.poll() is not None:
                raise AssertionError(
                    f"API exited with {self.popen.returncode}:\n{self.log()[-3000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            return False

        wait_until(alive, timeout=20, what=f"API on {self.port}")
