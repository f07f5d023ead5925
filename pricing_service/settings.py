"""One place for every setting, read from the environment (or a ``.env`` file).

Variables are prefixed ``PRICING_`` (``PRICING_RULES_DIR``), except ``REDIS_URL``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pricing_service.logs import LogFormat


class Settings(BaseSettings):
    # populate_by_name: Settings(redis_url=...) sets the field even where an alias names its
    # variable (pydantic-settings 2.4 ignores such a keyword without it; 2.16 does not)
    model_config = SettingsConfigDict(
        env_prefix="PRICING_", env_file=".env", extra="ignore", populate_by_name=True
    )

    # -- Redis ------------------------------------------------------------------------------
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_URL", "PRICING_REDIS_URL"),
        description="redis://host:6379/0; unset starts an embedded Redis in data_dir.",
    )
    redis_cluster_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_CLUSTER_URL", "PRICING_REDIS_CLUSTER_URL"),
        description="redis://host:7000 of any node of a Redis Cluster; wins over redis_url.",
    )
    queue_partitions: int = Field(
        default=1,
        ge=1,
        le=256,
        description="Streams the repricers' work queue and the changes stream are each split "
        "into (spread over a cluster's shards); every process must agree, and a change needs "
        "an empty queue.",
    )
    redis_pool_size: int = Field(default=64, ge=1, le=10_000)
    redis_connect_timeout: float = Field(default=1.0, gt=0, description="Seconds.")
    redis_socket_timeout: float = Field(default=1.0, gt=0, description="Seconds per command.")
    data_dir: Path = Field(default=Path("var"), description="Embedded Redis data (AOF) lives here.")

    # -- rules and retention ------------------------------------------------------------------
    rules_dir: Path = Path("rules")
    rules_poll_seconds: float = Field(default=2.0, gt=0)
    retention_days: int = Field(default=35, ge=30, le=3650, description="Audit and history.")

    # -- API ----------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    api_keys: str | None = Field(
        default=None,
        description="Hashed API keys: 'name:scope+scope:sha256hex' entries separated by ';'.",
    )
    api_keys_file: Path | None = Field(default=None, description="The same, one entry a line.")
    public_reads: bool = Field(default=False, description="Price lookups without a key.")
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    max_lookup_skus: int = Field(default=1000, ge=1)
    max_bulk_items: int = Field(default=20_000, ge=1)
    max_batch_events: int = Field(default=10_000, ge=1)
    cache_max_items: int = Field(
        default=1_000_000, ge=0, description="Schedules cached per API process."
    )
    stale_serve_seconds: float = Field(
        default=300.0, ge=0, description="Serve from cache while Redis is down."
    )
    access_log: bool = Field(default=True, description="A log line per HTTP request.")
    shutdown_grace_seconds: float = Field(
        default=20.0,
        ge=0,
        description="After SIGTERM, how long requests and jobs in progress get to finish.",
    )

    # -- logs ---------------------------------------------------------------------------------
    log_format: LogFormat = Field(default="json", description="json (a line each) or text.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    # -- repricer -------------------------------------------------------------------------------
    repricer_name: str | None = Field(default=None, description="Consumer name; default host-pid.")
    repricer_batch: int = Field(default=500, ge=1, le=100_000)
    boundary_lead_seconds: int = Field(default=60, ge=0, description="Reprice ahead of windows.")
    claim_idle_seconds: float = Field(
        default=30.0, gt=0, description="Take over a dead repricer's work."
    )
    repricer_metrics_port: int = Field(default=9101, ge=0, le=65535, description="0: off.")
    elasticity_fit_interval_seconds: float = Field(
        default=86_400.0, ge=0, description="The repricers refit elasticities this often; 0: off."
    )
    compaction_interval_seconds: float = Field(
        default=3_600.0,
        ge=0,
        description="The repricers pack superseded audit records and old offer-history "
        "entries into blocks this often, about 5x and 8x less Redis memory; 0: off.",
    )

    # -- crawlers (the fleet's own limits are in crawlers/settings.py) --------------------------
    scheduler_metrics_port: int = Field(default=9102, ge=0, le=65535, description="0: off.")
    crawler_metrics_port: int = Field(
        default=9103, ge=0, le=65535, description="The first worker's; 0: off."
    )

    @property
    def configured_redis_url(self) -> str | None:
        """The Redis the service is told to use (a cluster first), or None: embedded."""
        return self.redis_cluster_url or self.redis_url

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_capitals(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


@lru_cache
def get_settings() -> Settings:
    return Settings()
