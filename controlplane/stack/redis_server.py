"""How `controlplane up` and the test fixtures run a Redis server.

Durability first: the append-only file is on and fsynced before every reply (`appendfsync
always`), so that whatever the control plane acknowledged (a decision-log event, a token) survives
a crash of Redis (DESIGN.md §5; Redis 7.0 has no WAITAOF). RDB snapshots are off: the AOF is the
one source of truth.
"""

from __future__ import annotations

from pathlib import Path


def redis_argv(binary: str, *, port: int, data_dir: Path) -> list[str]:
    return [
        binary,
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(data_dir),
        "--appendonly", "yes",
        "--appendfsync", "always",
        "--save", "",
        "--daemonize", "no",
        "--protected-mode", "yes",
        "--loglevel", "notice",
        "--logfile", "",
    ]  # fmt: skip
