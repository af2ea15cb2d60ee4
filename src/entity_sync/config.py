"""Settings from ENTITY_SYNC_* environment variables (README "Configuration").

Defaults are the embedded ones: SQLite state and kombu's SQLAlchemy transport on SQLite as the
broker, both under `.entity-sync/`, so `entity-sync demo` needs no services.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from entity_sync.schemas.types import EntityId

AMQP_SCHEMES = ("amqp://", "amqps://", "pyamqp://")


class QueueRetry(BaseModel):
    """A per-queue override of the retry policy (either part may be left out)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int | None = Field(None, ge=1, le=100)
    delays: list[int] | None = Field(None, min_length=1)

    @field_validator("delays")
    @classmethod
    def _positive(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(d < 1 or d > 86_400 for d in value):
            raise ValueError("delays are whole seconds from 1 to 86400")
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ENTITY_SYNC_", extra="ignore", frozen=True)

    data_dir: Path = Field(Path(".entity-sync"), description="Where embedded state lives.")
    broker_url: str = Field(
        "",
        description="AMQP URL, or several separated by ; (a cluster: failover between them), "
        "or sqla+sqlite:///... (embedded).",
    )
    database_url: str = Field("", description="SQLAlchemy URL: postgresql+psycopg://... or sqlite.")
    prefix: str = Field("entity-sync", pattern=r"^[A-Za-z0-9_-]{1,48}$")
    global_entity: EntityId = "global"
    # At least 3 batches: one awaiting its confirms, one in its transaction, the next arriving.
    # With 2 (1000 for 500) the broker could not send the next batch until the previous was
    # acked, after the transaction: the loop waited for deliveries 13.5% of its time (py-spy).
    prefetch: int = Field(2000, ge=1, le=65535)
    batch_size: int = Field(500, ge=1, le=10_000)
    batch_linger_ms: int = Field(20, ge=0, le=10_000, description="Wait for a fuller batch.")
    bulk_chunk_size: int = Field(
        1000, ge=1, le=100_000, description="Objects per chunk of a backfill or currency release."
    )
    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_attempts: int = Field(
        5, ge=1, le=100, description="Failed deliveries of a transient failure before its DLQ."
    )
    retry_delays: str = Field(
        "1,5,30,120",
        pattern=r"^\s*\d+\s*(,\s*\d+\s*)*$",
        description="Seconds before retry 1, 2, ...; the last repeats (comma separated).",
    )
    retry_per_queue: dict[str, QueueRetry] = Field(
        default_factory=dict,
        description='Per input queue (name without prefix), JSON: {"object-shared": '
        '{"max_attempts": 8, "delays": [1, 10, 60]}}.',
    )
    allowed_publishers: dict[str, list[str]] = Field(
        default_factory=dict,
        description="AMQP user_ids allowed per input queue (name without prefix), JSON: "
        '{"object-shared": ["billing-upstream"]}; a queue not named accepts anyone.',
    )
    db_retry_max_seconds: float = Field(30.0, gt=0, description="Cap of the database backoff.")
    outbox_relay_age_seconds: float = Field(30.0, ge=0)
    processed_retention_days: float = Field(
        30.0, gt=0, description="How long event ids are remembered for deduplication."
    )
    heartbeat_seconds: int = Field(30, ge=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    metrics_port: int = Field(0, ge=0, le=65535, description="0 disables /metrics.")
    sync_enabled: bool = Field(True, description="Consume sync requests in this process.")
    sync_prefetch: int = Field(4, ge=1, le=100, description="Sync requests taken at a time.")
    sync_concurrency: int = Field(4, ge=1, le=32, description="Ids of one request in parallel.")
    sync_retention_days: float = Field(7.0, gt=0, description="How long sessions are kept.")
    sync_lock_ttl_seconds: float = Field(900.0, gt=0, description="Lock of a crashed sync.")
    failed_retention_days: float = Field(
        15.0, gt=0, description="How long replayed and purged failed messages are kept."
    )
    console_token: SecretStr | None = Field(
        None, description="Sign-in token of the console's operators (may replay and purge)."
    )
    console_readonly_token: SecretStr | None = Field(
        None, description="Sign-in token that sees everything in the console and changes nothing."
    )
    console_ingest_seconds: float = Field(
        10.0, gt=0, le=3600, description="How often the console ingests the DLQs."
    )
    console_replay_rate: float = Field(
        50.0, gt=0, le=10_000, description="Default replay rate of the console, per second."
    )
    console_canary_seconds: float = Field(
        30.0, gt=0, le=3600, description="How long a canary replay waits for its outcome."
    )
    console_secure_cookie: bool = Field(
        False, description="Mark the session cookie Secure (set it when served over HTTPS)."
    )

    @field_validator("broker_url")
    @classmethod
    def _failover_list(cls, value: str) -> str:
        if ";" in value and not all(p.startswith(AMQP_SCHEMES) for p in value.split(";")):
            raise ValueError(
                "a list of brokers is amqp:// URLs separated by ; (no spaces, no empty part)"
            )
        return value

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _embedded_defaults(self) -> Settings:
        if not self.broker_url:
            object.__setattr__(
                self, "broker_url", f"sqla+sqlite:///{(self.data_dir / 'broker.db').resolve()}"
            )
        if not self.database_url:
            object.__setattr__(
                self, "database_url", f"sqlite:///{(self.data_dir / 'state.db').resolve()}"
            )
        return self

    def delays(self) -> tuple[int, ...]:
        """ENTITY_SYNC_RETRY_DELAYS as whole seconds."""
        return tuple(int(part) for part in self.retry_delays.split(","))

    @field_validator("retry_delays")
    @classmethod
    def _delays_positive(cls, value: str) -> str:
        if any(int(p) < 1 or int(p) > 86_400 for p in value.split(",")):
            raise ValueError("delays are whole seconds from 1 to 86400")
        return value

    @property
    def embedded_broker(self) -> bool:
        return not self.broker_url.startswith(AMQP_SCHEMES)

    def safe_broker_url(self) -> str:
        return redact_url(self.broker_url)

    def safe_database_url(self) -> str:
        return redact_url(self.database_url)


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, for logs and error messages.

    A `;`-separated list of broker URLs (kombu's failover syntax) is redacted URL by URL.
    """
    if ";" in url:
        return ";".join(_redact_one(part) for part in url.split(";"))
    return _redact_one(url)


def _redact_one(url: str) -> str:
    if not url:
        return url
    try:
        parsed = make_url(url.replace("sqla+", "", 1) if url.startswith("sqla+") else url)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown only by scheme
        scheme, sep, _ = url.partition("://")
        return f"{scheme}://***" if sep else "***"
    if parsed.password is None:
        return url
    shown = parsed.render_as_string(hide_password=True)
    return ("sqla+" + shown) if url.startswith("sqla+") else shown
