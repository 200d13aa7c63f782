"""Files that hold a secret (a token, a passphrase, an encrypted key): created with mode 0600."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from controlplane.tokens.store import TOKEN_PREFIX


def write_secret(path: Path, secret: str) -> None:
    """Write `secret` (and a newline) to `path`, readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")


def read_or_create_secret(path: Path, given: str | None) -> str:
    """`given` if set, else the secret kept in `path`, else a new random one written there."""
    if given:
        return given
    if path.is_file():
        existing = path.read_text().strip()
        if existing:
            return existing
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    write_secret(path, token)
    return token
