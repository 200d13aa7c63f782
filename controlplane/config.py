"""Settings of the control plane, read from `CONTROLPLANE_*` environment variables.

`Settings` is built once by each entry point (the CLI, the test fixtures) and passed down; nothing
reads the environment after that and there is no module-level settings object. Every limit has a
bound, so that a typo in an environment variable cannot turn a limit off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from controlplane.errors import ConfigurationError

OPA_VERSION = "v1.22.3"
DEFAULT_OPA_CACHE = Path.home() / ".cache" / "controlplane" / f"opa-{OPA_VERSION}" / "opa"

Port = Annotated[int, Field(ge=1, le=65535)]
MiB = 1024 * 1024


class Settings(BaseSettings):
    """Everything the control plane can be told; defaults match DESIGN.md §4."""

    model_config = SettingsConfigDict(env_prefix="CONTROLPLANE_", extra="forbid", frozen=True)

    # Where the API listens, and the URL clients use to reach it (the execution-request audience).
    host: str = "127.0.0.1"
    port: Port = 8080
    public_url: str = "http://127.0.0.1:8080"
    workers: Annotated[int, Field(ge=1, le=64)] = 1

    # Redis: `up` starts its own on redis_port unless redis_url is set.
    redis_url: str | None = None
    redis_port: Port = 6379
    redis_server_bin: str = "redis-server"
    redis_timeout_seconds: Annotated[float, Field(gt=0, le=10)] = 1.0

    # OPA: the server the decision client talks to, and the binary `up` starts.
    opa_url: str = "http://127.0.0.1:8181"
    opa_port: Port = 8181
    opa_bin: Path | None = None
    opa_decision_timeout_seconds: Annotated[float, Field(gt=0, le=10)] = 1.0
    opa_connect_timeout_seconds: Annotated[float, Field(gt=0, le=10)] = 0.25
    opa_max_connections: Annotated[int, Field(ge=1, le=1024)] = 100

    # Decisions: only paths under these roots are served by POST /v1/data/{path}.
    decision_roots: tuple[str, ...] = ("governance",)

    # Execution requests (DESIGN.md §5): lifetime cap and tolerated clock skew.
    request_max_lifetime_seconds: Annotated[int, Field(ge=1, le=600)] = 60
    clock_skew_seconds: Annotated[int, Field(ge=0, le=60)] = 5
    max_request_bytes: Annotated[int, Field(ge=1024, le=1 * MiB)] = 64 * 1024

    # Grants: lifetime, and the passphrase that encrypts signing keys at rest (never logged).
    grant_lifetime_seconds: Annotated[int, Field(ge=1, le=3600)] = 60
    key_passphrase: SecretStr | None = None
    key_passphrase_file: Path | None = None
    grant_key: SecretStr | None = None  # an encrypted key (JWE) from `controlplane keys generate`
    grant_key_file: Path | None = None
    grant_record_retention_seconds: Annotated[int, Field(ge=3600, le=90 * 86400)] = 7 * 86400

    # Policies (issue #4): the bundle signing key (sealed like grant keys; generated when absent),
    # the scope OPA checks, upload limits, the longest long poll, and how long after an activation
    # a decision may still come from the previous revision while the fleet converges.
    bundle_key: SecretStr | None = None
    bundle_key_file: Path | None = None
    bundle_scope: Annotated[str, Field(min_length=1, max_length=128)] = "governance"
    max_bundle_bytes: Annotated[int, Field(ge=1024, le=256 * MiB)] = 8 * MiB
    max_bundle_unpacked_bytes: Annotated[int, Field(ge=1024, le=1024 * MiB)] = 32 * MiB
    bundle_long_poll_max_seconds: Annotated[int, Field(ge=1, le=300)] = 60
    policy_grace_seconds: Annotated[float, Field(ge=0, le=3600)] = 5.0
    fleet_forget_after_seconds: Annotated[int, Field(ge=60, le=30 * 86400)] = 86400
    # The token the control plane presents to OPA, whose digest the bundle's system.authz admits.
    opa_client_token: SecretStr | None = None
    opa_client_token_file: Path | None = None

    # The ledger (issue #5): its origin (default: the public URL's host and port + "/ledger"), its
    # Ed25519 log key (sealed; created in Redis when absent), whether Redis must fsync every write,
    # and a file that keeps the last signed checkpoint's size and root outside Redis.
    ledger_origin: str | None = None
    ledger_key: SecretStr | None = None
    ledger_key_file: Path | None = None
    ledger_require_fsync_always: bool = True
    ledger_state_file: Path | None = None
    # The archive (c2sp.org/tlog-tiles): a directory or an fsspec URL (s3://..., with s3fs). When
    # set, one API process at a time copies the ledger there every interval and trims Redis below
    # what is archived (unless archive_trim is off); proofs then read the archived part.
    archive_url: str | None = None
    archive_interval_seconds: Annotated[float, Field(ge=0.1, le=3600)] = 10.0
    archive_trim: bool = True

    # Credentials. The admin token bootstraps everything else; it is held only as a digest.
    admin_token: SecretStr | None = None
    token_cache_seconds: Annotated[float, Field(ge=0, le=60)] = 2.0
    token_cache_entries: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000

    # Body limits (DESIGN.md §2.5): requests, OPA's compressed log chunks, their inflated size.
    max_body_bytes: Annotated[int, Field(ge=1024, le=64 * MiB)] = 1 * MiB
    max_log_body_bytes: Annotated[int, Field(ge=1024, le=256 * MiB)] = 8 * MiB
    max_log_decompressed_bytes: Annotated[int, Field(ge=1024, le=1024 * MiB)] = 64 * MiB
    max_log_events_per_upload: Annotated[int, Field(ge=1, le=1_000_000)] = 100_000

    # Decision-log stream: dedupe window on decision_id, and a cap on entries (refuse, never drop).
    decision_log_dedupe_seconds: Annotated[int, Field(ge=60, le=7 * 86400)] = 3600
    # Reconciliation (ledger/reconcile.py): an OPA decision whose opa.decision entry has not come
    # within the window is missing; after the retention it is forgotten. OPA uploads every 1-10 s
    # by default (min/max_delay_seconds), so a minute leaves room for retries.
    ledger_reconcile_window_seconds: Annotated[int, Field(ge=10, le=86400)] = 60
    ledger_reconcile_retention_seconds: Annotated[int, Field(ge=60, le=30 * 86400)] = 7 * 86400
    decision_log_max_entries: Annotated[int, Field(ge=1000, le=1_000_000_000)] = 50_000_000

    # Where `up` keeps Redis data, OPA's config and generated tokens.
    state_dir: Path = Path(".controlplane")
    policy_dir: Path = Path("rego")
    bundle_template_dir: Path = Path("bundles/governance")

    log_level: str = "info"
    access_log: bool = True

    @field_validator("decision_roots")
    @classmethod
    def _roots_are_clean(cls, roots: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(root.strip("/") for root in roots)
        if not cleaned or any(not root or root.split("/")[0] == "system" for root in cleaned):
            raise ValueError("decision roots must be non-empty paths outside system/")
        return cleaned

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, level: str) -> str:
        if level.lower() not in {"debug", "info", "warning", "error"}:
            raise ValueError("log_level must be debug, info, warning or error")
        return level.lower()

    @property
    def effective_ledger_origin(self) -> str:
        """c2sp.org/tlog-checkpoint: a schema-less URL; by default `<host:port>/ledger`."""
        return self.ledger_origin or urlsplit(self.public_url).netloc + "/ledger"

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or f"redis://127.0.0.1:{self.redis_port}/0"

    def resolve_key_passphrase(self) -> bytes:
        """The passphrase that encrypts signing keys: the setting, else the file's first line."""
        if self.key_passphrase is not None:
            secret = self.key_passphrase.get_secret_value()
        elif self.key_passphrase_file is not None:
            try:
                secret = self.key_passphrase_file.read_text().splitlines()[0]
            except (OSError, IndexError) as exc:
                raise ConfigurationError(
                    f"cannot read the key passphrase from {self.key_passphrase_file}"
                ) from exc
        else:
            raise ConfigurationError(
                "signing keys are kept encrypted: set CONTROLPLANE_KEY_PASSPHRASE or "
                "CONTROLPLANE_KEY_PASSPHRASE_FILE"
            )
        if len(secret) < 12:
            raise ConfigurationError("the key passphrase must be at least 12 characters")
        return secret.encode()

    def resolve_opa_client_token(self) -> str | None:
        """The token the control plane presents to OPA: the setting, else the file's first line."""
        if self.opa_client_token is not None:
            return self.opa_client_token.get_secret_value()
        if self.opa_client_token_file is None:
            return None
        try:
            return self.opa_client_token_file.read_text().splitlines()[0].strip()
        except (OSError, IndexError) as exc:
            raise ConfigurationError(
                f"cannot read the OPA client token from {self.opa_client_token_file}"
            ) from exc

    def resolve_opa_bin(self) -> Path:
        """The OPA binary to run: `CONTROLPLANE_OPA_BIN`, else the pinned build in the cache."""
        candidate = self.opa_bin or DEFAULT_OPA_CACHE
        if not candidate.is_file():
            raise ConfigurationError(
                f"OPA binary not found at {candidate}; run `make opa` or set CONTROLPLANE_OPA_BIN"
            )
        return candidate


def load_settings(**overrides: object) -> Settings:
    """Build `Settings` from the environment, turning validation errors into one clear error."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"CONTROLPLANE_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigurationError(f"invalid settings: {problems}") from exc
