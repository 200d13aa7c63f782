"""`controlplane up` (what `make run` runs), end to end, on free ports, as a newcomer uses it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.processes import REPO, free_port, wait_until
from tests.support.stack import DECISION_PATH, DEMO_INPUT

pytestmark = pytest.mark.integration


@dataclass
class Up:
    process: subprocess.Popen[bytes]
    output: Path
    errors: Path
    api_port: int
    opa_port: int
    redis_port: int
    token: str

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def stderr(self) -> str:
        return self.errors.read_text(errors="replace")

    def decide(self) -> dict[str, object]:
        response = httpx.post(
            f"http://127.0.0.1:{self.api_port}{DECISION_PATH}",
            json={"input": DEMO_INPUT},
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )
        assert response.status_code == 200
        return dict(response.json())

    def opa_pid(self) -> int:
        marker = f"127.0.0.1:{self.opa_port}".encode()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    cmdline = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if b"opa\x00run" in cmdline.replace(b"/opa\x00", b"opa\x00") and marker in cmdline:
                    return int(entry.name)
        raise AssertionError("OPA child not found")


def start_up(tmp_path: Path, **env: str) -> Up:
    ports = {"api": free_port(), "opa": free_port(), "redis": free_port()}
    token = "cp_up_test_admin_token_0123456789abcdef"
    output, errors = tmp_path / "up.out", tmp_path / "up.err"
    environment = {
        **os.environ,
        "CONTROLPLANE_PORT": str(ports["api"]),
        "CONTROLPLANE_OPA_PORT": str(ports["opa"]),
        "CONTROLPLANE_REDIS_PORT": str(ports["redis"]),
        "CONTROLPLANE_PUBLIC_URL": f"http://127.0.0.1:{ports['api']}",
        "CONTROLPLANE_STATE_DIR": str(tmp_path / "state"),
        "CONTROLPLANE_ADMIN_TOKEN": token,
        **env,
    }
    environment.pop("CONTROLPLANE_REDIS_URL", None)
    with output.open("wb") as out, errors.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "controlplane", "up"],
            cwd=REPO,
            env=environment,
            stdout=out,
            stderr=err,
        )
    return Up(process, output, errors, ports["api"], ports["opa"], ports["redis"], token)


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Up]:
    up = start_up(tmp_path)
    try:
        wait_until(
            lambda: "controlplane is up" in up.text() or up.process.poll() is not None,
            timeout=60,
            what="controlplane up",
        )
        assert up.process.poll() is None, up.text() + up.stderr()
        yield up
    finally:
        if up.process.poll() is None:
            up.process.send_signal(signal.SIGINT)
            up.process.wait(30)


def test_up_decides_denies_on_paused_opa_and_stops_cleanly(running: Up) -> None:
    text = running.text()
    assert running.token in text  # the admin token is printed
    assert f"http://127.0.0.1:{running.api_port}" in text
    assert running.decide()["result"] == {"allow": True, "reasons": []}

    opa = running.opa_pid()
    os.kill(opa, signal.SIGSTOP)
    try:
        started = time.monotonic()
        body = running.decide()
        assert body == {
            "result": {"allow": False, "reasons": ["opa_timeout"]},
            "reason": "opa_timeout",
        }
        assert time.monotonic() - started < 2.0  # default OPA timeout: 1 s
    finally:
        os.kill(opa, signal.SIGCONT)
    assert running.decide()["result"]["allow"] is True

    running.process.send_signal(signal.SIGINT)
    assert running.process.wait(30) == 0
    for port in (running.api_port, running.opa_port, running.redis_port):
        assert port_is_free(port), port
    # Children's logs were streamed with a prefix.
    assert (
        "opa   | " in running.text()
        and "api   | " in running.text()
        and "redis | " in running.text()
    )


def test_a_crashed_child_stops_the_others(running: Up) -> None:
    os.kill(running.opa_pid(), signal.SIGKILL)
    assert running.process.wait(30) == 1
    assert "opa exited unexpectedly" in running.stderr()
    for port in (running.api_port, running.redis_port):
        assert port_is_free(port), port


def test_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        busy = blocker.getsockname()[1]
        up = start_up(tmp_path, CONTROLPLANE_OPA_PORT=str(busy))
        assert up.process.wait(30) == 78
    lines = up.stderr().strip().splitlines()
    assert lines == [
        f"controlplane: port {busy} (OPA) is already in use on 127.0.0.1; "
        "stop what holds it or set CONTROLPLANE_OPA_PORT"
    ]
    assert "controlplane is up" not in up.text()


def test_missing_opa_binary_is_one_clear_line(tmp_path: Path) -> None:
    up = start_up(tmp_path, CONTROLPLANE_OPA_BIN=str(tmp_path / "no-opa"))
    assert up.process.wait(30) == 78
    lines = up.stderr().strip().splitlines()
    assert len(lines) == 1 and "OPA binary not found" in lines[0]


def test_invalid_setting_is_one_clear_line(tmp_path: Path) -> None:
    up = start_up(tmp_path, CONTROLPLANE_OPA_DECISION_TIMEOUT_SECONDS="600")
    assert up.process.wait(30) == 78
    lines = up.stderr().strip().splitlines()
    assert len(lines) == 1 and "CONTROLPLANE_OPA_DECISION_TIMEOUT_SECONDS" in lines[0]
