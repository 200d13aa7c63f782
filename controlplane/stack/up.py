"""`controlplane up`: start Redis, the API and OPA, wait until each is ready, supervise them.

Order of start: Redis (unless `CONTROLPLANE_REDIS_URL` names one), then the API (OPA pulls its
bundle from it), then, on a fresh state, the policy of `rego/` built, published and activated
through the API (`stack.seed`), then OPA, configured with the API's bundle verification key; the
API is ready only once OPA runs an acceptable revision. Order of
stop, on Ctrl-C or when any child dies: OPA (it flushes its decision logs to the API), the API,
Redis. Everything that can go wrong before start-up (a port in use, a missing binary, no policy
directory) is found first and reported in one line, before anything is started.
"""

from __future__ import annotations

import asyncio
import errno
import shutil
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from controlplane import jsontext
from controlplane.config import Settings
from controlplane.decisions.demo import DEMO_INPUT
from controlplane.errors import ConfigurationError, ControlPlaneError, RedisUnavailable
from controlplane.redis_client import connect, redis_errors
from controlplane.secretfile import read_or_create_secret, write_secret
from controlplane.stack.children import Child, child_env
from controlplane.stack.opa_server import opa_argv, opa_config
from controlplane.stack.redis_server import redis_argv
from controlplane.stack.seed import build_unsigned, publish_and_activate, verification_key
from controlplane.tokens.roles import Role
from controlplane.wiring import open_services

START_TIMEOUT_SECONDS = 30.0

ADMIN_TOKEN_FILE = "admin.token"  # noqa: S105 (a file name)
OPA_TOKEN_FILE = "opa.token"  # noqa: S105 (a file name)
OPA_CLIENT_TOKEN_FILE = "opa-client.token"  # noqa: S105 (what the API presents to OPA)
KEY_PASSPHRASE_FILE = "key-passphrase"  # noqa: S105 (a file name)


class ChildExited(ControlPlaneError):
    default_code = "child_exited"
    title = "A component stopped"


class _InterruptedError(Exception):
    """Ctrl-C during start-up."""


def check_port_free(host: str, port: int, what: str, setting: str) -> None:
    """Raise `ConfigurationError` naming the port and the setting to change when it is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigurationError(
                    f"port {port} ({what}) is already in use on {host}; "
                    f"stop what holds it or set {setting}"
                ) from exc
            raise ConfigurationError(f"cannot bind {host}:{port} ({what}): {exc}") from exc


class Stack:
    def __init__(self, settings: Settings, stop: asyncio.Event) -> None:
        self.settings = settings
        self.stop = stop
        self.state = settings.state_dir.resolve()
        self.redis_url = settings.effective_redis_url
        self.api_url = f"http://127.0.0.1:{settings.port}"
        self.opa_url = f"http://127.0.0.1:{settings.opa_port}"
        self.children: list[Child] = []

    def preflight(self) -> tuple[str | None, Path]:
        """Everything checkable before starting: binaries, ports, policy directory."""
        s = self.settings
        redis_bin = None
        if s.redis_url is None:
            redis_bin = shutil.which(s.redis_server_bin)
            if redis_bin is None:
                raise ConfigurationError(
                    f"{s.redis_server_bin} not found on PATH; install it "
                    "(apt-get install -y redis-server) or set CONTROLPLANE_REDIS_URL"
                )
            # Debian starts a system Redis on 6379 when the package is installed with systemd.
            check_port_free(
                "127.0.0.1",
                s.redis_port,
                "Redis",
                "CONTROLPLANE_REDIS_PORT (or use that Redis: "
                f"CONTROLPLANE_REDIS_URL=redis://127.0.0.1:{s.redis_port}/0)",
            )
        opa_bin = s.resolve_opa_bin()
        check_port_free("127.0.0.1", s.opa_port, "OPA", "CONTROLPLANE_OPA_PORT")
        check_port_free(s.host, s.port, "control plane API", "CONTROLPLANE_PORT")
        if not s.policy_dir.is_dir():
            raise ConfigurationError(
                f"policy directory {s.policy_dir} not found; run from the repository or set "
                "CONTROLPLANE_POLICY_DIR"
            )
        if not (s.bundle_template_dir / ".manifest").is_file():
            raise ConfigurationError(
                f"bundle template {s.bundle_template_dir}/.manifest not found; "
                "set CONTROLPLANE_BUNDLE_TEMPLATE_DIR"
            )
        return redis_bin, opa_bin

    async def run(self) -> int:
        redis_bin, opa_bin = self.preflight()
        self.state.mkdir(mode=0o700, parents=True, exist_ok=True)
        seed = build_unsigned(self.settings.policy_dir, self.settings.bundle_template_dir)
        given = self.settings.admin_token
        admin_token = read_or_create_secret(
            self.state / ADMIN_TOKEN_FILE, given.get_secret_value() if given else None
        )
        # The passphrase that encrypts the grant signing keys: yours if set, else one kept here.
        key_passphrase: dict[str, str] = {}
        if self.settings.key_passphrase is None and self.settings.key_passphrase_file is None:
            passphrase_file = self.state / KEY_PASSPHRASE_FILE
            read_or_create_secret(passphrase_file, None)
            key_passphrase["CONTROLPLANE_KEY_PASSPHRASE_FILE"] = str(passphrase_file)
            self.settings = self.settings.model_copy(
                update={"key_passphrase_file": passphrase_file}
            )
        try:
            if redis_bin is not None:
                data_dir = self.state / "redis"
                data_dir.mkdir(mode=0o700, exist_ok=True)
                argv = redis_argv(redis_bin, port=self.settings.redis_port, data_dir=data_dir)
                redis = await self._start("redis", argv)
                await self._wait(redis, "Redis to answer PING", self._redis_answers)
            await self._register_opa_token()
            client_token = self._opa_client_token()
            # The ledger's last signed checkpoint and its archive live in the state folder
            # unless configured elsewhere (DESIGN.md §5).
            ledger: dict[str, str] = {}
            if self.settings.ledger_state_file is None:
                ledger["CONTROLPLANE_LEDGER_STATE_FILE"] = str(self.state / "ledger-state.json")
            if self.settings.archive_url is None:
                ledger["CONTROLPLANE_ARCHIVE_URL"] = str(self.state / "archive")
            api = await self._start(
                "api",
                [sys.executable, "-m", "controlplane", "serve"],
                env=child_env(
                    CONTROLPLANE_REDIS_URL=self.redis_url,
                    CONTROLPLANE_OPA_URL=self.opa_url,
                    CONTROLPLANE_ADMIN_TOKEN=admin_token,
                    CONTROLPLANE_OPA_CLIENT_TOKEN_FILE=str(client_token),
                    **key_passphrase,
                    **ledger,
                ),
            )
            await self._wait(
                api, "the API to answer /healthz", self._http_ok(f"{self.api_url}/healthz")
            )
            activation = await asyncio.to_thread(
                publish_and_activate,
                self.api_url,
                admin_token,
                seed,
                reason=f"seeded by controlplane up from {self.settings.policy_dir}",
                only_if_none_active=True,
            )
            revision = str(activation["revision"])
            config_file = self.state / "opa-config.json"
            config = opa_config(
                api_url=self.api_url,
                token_path=self.state / OPA_TOKEN_FILE,
                instance="dev",
                verification_key=await asyncio.to_thread(verification_key, self.api_url),
            )
            config_file.write_text(jsontext.dumps(config).decode())
            opa = await self._start(
                "opa",
                opa_argv(opa_bin, port=self.settings.opa_port, config_file=config_file),
                cwd=self.state,
            )
            await self._wait(
                opa, "OPA to activate its bundle", self._http_ok(f"{self.opa_url}/health?bundles")
            )
            await self._wait(api, "the API to be ready", self._http_ok(f"{self.api_url}/readyz"))
            self._banner(admin_token, revision)
            return await self._supervise()
        except _InterruptedError:
            print("controlplane up: interrupted during start-up; stopping", file=sys.stderr)
            return 130
        finally:
            await self._stop_all()

    async def _start(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Child:
        child = Child(name, argv, env=env, cwd=cwd)
        await child.start()
        self.children.append(child)
        return child

    async def _wait(self, child: Child, what: str, ready: Callable[[], Awaitable[bool]]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.stop.is_set():
                raise _InterruptedError
            if child.returncode is not None:
                raise ChildExited(
                    f"{child.name} exited with code {child.returncode} while waiting for {what}; "
                    "see its log above"
                )
            if await ready():
                return
            await asyncio.sleep(0.1)
        raise ChildExited(f"gave up after {START_TIMEOUT_SECONDS:.0f} s waiting for {what}")

    async def _redis_answers(self) -> bool:
        client = connect(self.redis_url, timeout_seconds=0.5)
        try:
            with redis_errors("waiting for Redis"):
                return bool(await client.ping())
        except RedisUnavailable:
            return False
        finally:
            await client.aclose()

    def _http_ok(self, url: str) -> Callable[[], Awaitable[bool]]:
        async def probe() -> bool:
            try:
                async with httpx.AsyncClient(timeout=1.0) as client:
                    return (await client.get(url)).status_code == 200
            except httpx.HTTPError:
                return False

        return probe

    def _opa_client_token(self) -> Path:
        """The token the API presents to OPA (its digest goes into every bundle it signs)."""
        path = self.state / OPA_CLIENT_TOKEN_FILE
        read_or_create_secret(path, None)
        return path

    async def _register_opa_token(self) -> None:
        """Register the token OPA presents on `/v1/logs` (kept in the state directory)."""
        path = self.state / OPA_TOKEN_FILE
        token = read_or_create_secret(path, None)
        settings = self.settings.model_copy(update={"redis_url": self.redis_url})
        async with open_services(settings) as services:
            record = await services.tokens.ensure(token, Role.OPA, "opa (controlplane up)")
            if record.revoked_at is not None or record.role is not Role.OPA:
                # Someone revoked the dev OPA's token: mint a fresh one rather than fail.
                token, _ = await services.tokens.create(Role.OPA, "opa (controlplane up)")
                write_secret(path, token)

    async def _supervise(self) -> int:
        waiters = {asyncio.create_task(child.wait()): child for child in self.children}
        stopper = asyncio.create_task(self.stop.wait())
        done, _ = await asyncio.wait({stopper, *waiters}, return_when=asyncio.FIRST_COMPLETED)
        for task in (stopper, *waiters):
            if task not in done:
                task.cancel()
        if stopper in done:
            print("controlplane up: stopping", file=sys.stderr)
            return 0
        crashed = waiters[next(task for task in done if task is not stopper)]
        print(
            f"controlplane up: {crashed.name} exited unexpectedly (exit code "
            f"{crashed.returncode}); stopping the others",
            file=sys.stderr,
        )
        return 1

    async def _stop_all(self) -> None:
        # Reverse start order would stop the API before OPA has flushed its logs; stop OPA first.
        order = sorted(self.children, key=lambda c: {"opa": 0, "api": 1, "redis": 2}[c.name])
        for child in order:
            await child.stop()

    def _banner(self, admin_token: str, revision: str) -> None:
        s = self.settings
        redis_note = "" if s.redis_url else f"  (data in {self.state / 'redis'})"
        print(
            f"""
controlplane is up
  API          {self.api_url}   (OpenAPI: {self.api_url}/docs)
  OPA          {self.opa_url}   (bundle governance, active revision {revision[:12]})
  Redis        {self.redis_url}{redis_note}
  admin token  {admin_token}

Try a decision:
  curl -s {self.api_url}/v1/data/governance/execution/decision \\
    -H "Authorization: Bearer {admin_token}" -H 'Content-Type: application/json' \\
    -d '{jsontext.dumps({"input": DEMO_INPUT}).decode()}'

Ctrl-C stops everything.
""",
            flush=True,
        )


async def up(settings: Settings) -> int:
    """Run the stack until Ctrl-C (exit 0) or until a component dies (exit 1)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return await Stack(settings, stop).run()
