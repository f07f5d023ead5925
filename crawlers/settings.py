"""The crawler fleet's settings, read from ``PRICING_CRAWL_*`` environment variables.

Per-competitor politeness lives in ``rules/competitors.yaml``; these are the fleet-wide
limits that protect the crawler itself (and the network it runs in).
"""

from __future__ import annotations

from decimal import Decimal
from ipaddress import IPv4Network, IPv6Network

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: A job in flight for this long is taken as lost (its entry removed by hand, say) and its
#: listing is queued again.
LOST_JOB_SECONDS = 86_400

DEFAULT_USER_AGENT = "pricing-service-crawler/0.1 (+https://github.com/)"


class CrawlerSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PRICING_CRAWL_", env_file=".env", extra="ignore", frozen=True
    )

    user_agent: str = DEFAULT_USER_AGENT
    # -- what a fetch may cost ------------------------------------------------------------
    connect_timeout: float = Field(default=5.0, gt=0, description="Seconds.")
    read_timeout: float = Field(default=10.0, gt=0, description="Seconds between two reads.")
    total_timeout: float = Field(
        default=30.0, gt=0, description="Seconds for a whole response: stops drip-feeding servers."
    )
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024, description="Decompressed.")
    max_redirects: int = Field(default=5, ge=0, le=20)
    # -- retries ----------------------------------------------------------------------------
    max_attempts: int = Field(default=4, ge=1, le=10, description="Per fetch, the first included.")
    backoff_base: float = Field(default=0.5, ge=0, description="Seconds; doubled per attempt.")
    backoff_cap: float = Field(default=30.0, ge=0, description="Longest pause between attempts.")
    max_retry_after: float = Field(
        default=120.0, ge=0, description="A longer Retry-After gives up instead of waiting."
    )
    # -- the network ------------------------------------------------------------------------
    allowed_private_networks: list[IPv4Network | IPv6Network] = Field(
        default_factory=list,
        description='Private or loopback networks that may be fetched, e.g. ["127.0.0.1/32"].',
    )
    robots_cache_seconds: float = Field(default=3600.0, gt=0, le=86_400)
    robots_unreachable_seconds: float = Field(
        default=60.0, gt=0, description="How long a 5xx or unreachable robots.txt is remembered."
    )
    # -- the queue --------------------------------------------------------------------------
    queue_partitions: int = Field(
        default=1,
        ge=1,
        le=256,
        description="Partitions of the crawl queue, each on its own hash tag (spread over a "
        "cluster's shards); every process must agree. The scheduler moves due times on a change.",
    )
    max_deliveries: int = Field(default=5, ge=1, description="Then the job is dead-lettered.")
    claim_idle_seconds: float = Field(default=60.0, gt=0, description="Take over dead workers'.")
    outcome_retention_seconds: int = Field(
        default=LOST_JOB_SECONDS,
        ge=3600,
        description="How long each job's outcome and its detail are kept; a job redelivered "
        "within it is only acknowledged. The scheduler takes a job in flight for a day as lost "
        "and queues the listing again, so a day covers every redelivery that matters.",
    )
    max_backlog: int = Field(
        default=10_000, ge=1, description="Scheduler pauses above this many pending jobs."
    )
    schedule_jitter: float = Field(
        default=0.1, ge=0, le=0.5, description="Next crawl moves by up to this share of the period."
    )
    retry_after_failure_seconds: float = Field(
        default=600.0,
        ge=0,
        description="After a crawl that timed out, could not connect, got 5xx, stayed "
        "rate-limited through its attempts or could not read robots.txt, the listing is "
        "crawled again this much later, "
        "twice that after a second such failure in a row, and so on, never later than its "
        "regular next crawl; 0: only at its regular next crawl.",
    )
    # -- the quality gate -------------------------------------------------------------------
    fx_rates: dict[str, Decimal] = Field(
        default_factory=dict,
        description='Conversion rates such as {"EUR/USD": "1.08"} (1 EUR = 1.08 USD).',
    )
    outlier_ratio: Decimal = Field(
        default=Decimal("0.4"), gt=0, description="Held back when this far from the reference."
    )
