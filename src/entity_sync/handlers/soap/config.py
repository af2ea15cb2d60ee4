"""Settings of the SOAP clients from ENTITY_SYNC_BILLING_* and ENTITY_SYNC_CRM_*."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

WSDL_DIR = Path(__file__).resolve().parent / "wsdl"


class SoapSettings(BaseSettings):
    """What both clients share. The password is a SecretStr so it never prints."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    wsdl: Path
    endpoint: str | None = Field(None, description="Overrides the WSDL's service address.")
    username: str = ""
    password: SecretStr = SecretStr("")
    connect_timeout: float = Field(5.0, gt=0)
    read_timeout: float = Field(60.0, gt=0)
    max_retries: int = Field(4, ge=0, le=20, description="Extra attempts of a transient fault.")
    backoff_seconds: float = Field(0.5, ge=0, description="First backoff; doubles, with jitter.")
    backoff_max_seconds: float = Field(30.0, ge=0)
    login_failure_cooldown_seconds: float = Field(
        60.0, ge=0, description="A failed login is not repeated within this time."
    )


class BillingSettings(SoapSettings):
    model_config = SettingsConfigDict(
        env_prefix="ENTITY_SYNC_BILLING_", extra="ignore", frozen=True
    )

    wsdl: Path = WSDL_DIR / "zuora.wsdl"
    batch_size: int = Field(2000, ge=1, le=2000, description="QueryOptions batchSize.")


class CrmSettings(SoapSettings):
    model_config = SettingsConfigDict(env_prefix="ENTITY_SYNC_CRM_", extra="ignore", frozen=True)

    wsdl: Path = WSDL_DIR / "salesforce.wsdl"
    chunk_size: int = Field(200, ge=1, le=200, description="Records per upsert call.")
