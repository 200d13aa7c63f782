"""Child processes of `controlplane up`: started in their own session, logs streamed with a prefix,
stopped politely (SIGTERM) and then firmly (SIGKILL).

Children run in their own process group so that a Ctrl-C reaches only the supervisor, which then
stops them in a deliberate order (OPA first, so that it can flush its decision logs to a still
running API). Each child also asks the kernel to send it SIGTERM if the supervisor dies
(`PR_SET_PDEATHSIG`, Linux), so that no orphan keeps a port.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_LINE_LIMIT = 1024 * 1024


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self._env = dict(env) if env is not None else None
        self._cwd = cwd
        self._process: asyncio.subprocess.Process | None = None
        self._pump: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self._env,
            cwd=self._cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,
            limit=_LINE_LIMIT,
        )
        self._pump = asyncio.create_task(self._stream_output(), name=f"{self.name}-log")

    @property
    def pid(self) -> int:
        return self._started().pid

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.returncode

    async def wait(self) -> int:
        code = await self._started().wait()
        if self._pump is not None:
            await self._pump
        return code

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `grace_seconds`; returns once the process is gone."""
        if self._process is None or self._process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self._process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self._process.wait(), grace_seconds)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            await self._process.wait()
        if self._pump is not None:
            await self._pump

    def _started(self) -> asyncio.subprocess.Process:
        if self._process is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self._process

    async def _stream_output(self) -> None:
        stdout = self._started().stdout
        if stdout is None:
            raise RuntimeError("child started without a stdout pipe")
        prefix = f"{self.name:<5} | ".encode()
        out = sys.stdout.buffer
        while True:
            try:
                line = await stdout.readline()
            except ValueError:  # a line over the limit: pass on what there is
                line = await stdout.read(_LINE_LIMIT)
            if not line:
                return
            out.write(prefix + line if line.endswith(b"\n") else prefix + line + b"\n")
            out.flush()


def child_env(**overrides: str) -> dict[str, str]:
    """The supervisor's environment with `overrides` on top."""
    return {**os.environ, **overrides}
