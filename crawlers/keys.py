"""The crawler's Redis keys, next to the service's (``pricing_service.store.keys``).

Every key that one script touches shares a hash tag, so each script runs on one shard of
a Redis Cluster:

- per SKU, ``{SKU}``: its listings and its jobs' outcomes, beside its offers, so a job's
  outcome and the observation it yields are written together;
- per queue partition, ``{crawl:N}``: due times, jobs, jobs in flight, outcomes and dead
  letters. A listing's partition is its SKU's (``crc32(SKU) mod partitions``); with
  several partitions the queue spreads over the shards;
- per domain, ``{domain}``: its rate slot and its leases;
- per competitor, ``{competitor:ID}``: its listings' crawl periods.
"""

from __future__ import annotations

from dataclasses import dataclass

from pricing_service.store.keys import PREFIX, sku_partition

JOBS_GROUP = "crawlers"
#: String: the partition count the due sets are laid out for (see ``Scheduler.rebalance``).
PARTITIONS = "crawl:partitions"
#: The unpartitioned queue's keys of earlier versions, moved by ``Scheduler.rebalance``.
LEGACY_DUE = "crawl:due"
LEGACY_JOBS = "crawl:jobs"
LEGACY_IN_FLIGHT = "crawl:inflight"
#: String: set once every listing stored before the periods index existed is in it (see
#: ``Scheduler.rebalance``).
PERIODS_INDEXED = "crawl:periods:indexed"
#: Hash: competitor -> when one of its listings was first stored while it had none
#: (epoch seconds); gone with its last listing. The scheduler exports it, so a competitor
#: whose crawls have never been accepted still has a clock its alert can read.
LISTED_COMPETITORS = "crawl:competitors:listed"
#: String: set once the competitors of the listings stored before LISTED_COMPETITORS
#: existed are in it (see ``Scheduler.rebalance``).
LISTED_INDEXED = "crawl:competitors:indexed"


@dataclass(frozen=True, slots=True)
class CrawlQueue:
    """One partition of the crawl queue."""

    index: int

    @property
    def _tag(self) -> str:
        return f"{{crawl:{self.index}}}"

    @property
    def due(self) -> str:
        """Sorted set: ``sku|competitor`` -> the epoch second its next crawl is due."""
        return f"{self._tag}:due"

    @property
    def jobs(self) -> str:
        """Stream of crawl jobs; the workers' consumer group reads it."""
        return f"{self._tag}:jobs"

    @property
    def in_flight(self) -> str:
        """Hash: ``sku|competitor`` -> id of its job in the queue; not queued again."""
        return f"{self._tag}:inflight"

    @property
    def failures(self) -> str:
        """Hash: ``sku|competitor`` -> crawls in a row that failed in a way worth retrying
        soon (see ``OutcomeRecorder``); gone with the next crawl that does not."""
        return f"{self._tag}:failures"

    @property
    def accepted(self) -> str:
        """Hash: competitor -> when a job acknowledged here last stored an accepted
        observation of it (epoch seconds); the scheduler exports the newest per competitor,
        so a crawler restart does not reset it."""
        return f"{self._tag}:accepted"

    @property
    def dead_letters(self) -> str:
        """Stream of jobs given up after too many deliveries."""
        return f"{self._tag}:dead"

    @property
    def outcomes(self) -> str:
        """Stream of every job's outcome, in the order they were recorded."""
        return f"{self._tag}:outcomes"


def queues(partitions: int) -> list[CrawlQueue]:
    return [CrawlQueue(index) for index in range(partitions)]


def queue_of(sku: str, partitions: int) -> CrawlQueue:
    """The partition of a SKU's listings: the same as its repricing queue partition would
    be with as many partitions, stable across processes and restarts."""
    return CrawlQueue(sku_partition(sku, partitions))


def listings(sku: str) -> str:
    """Hash: competitor id -> listing JSON (url, frequency)."""
    return f"{PREFIX}:{{{sku}}}:listings"


def competitor_periods(competitor: str) -> str:
    """Sorted set: SKU -> its listing's period at the competitor (seconds); kept with the
    listings, so the scheduler reads a competitor's typical period without a scan."""
    return f"crawl:{{competitor:{competitor}}}:periods"


def outcome(job_id: str) -> str:
    """String: the job's outcome JSON, written once (SET NX), on its SKU's shard."""
    sku, _, _ = job_id.partition("|")
    return f"{PREFIX}:{{{sku}}}:crawl:{job_id}"


def rate(domain: str) -> str:
    """String: the domain's GCRA theoretical arrival time, in microseconds."""
    return f"crawl:{{{domain}}}:rate"


def slots(domain: str) -> str:
    """Sorted set: lease id -> expiry (epoch ms) of the domain's requests in flight."""
    return f"crawl:{{{domain}}}:slots"


def due_member(sku: str, competitor: str) -> str:
    return f"{sku}|{competitor}"


def parse_due_member(member: str) -> tuple[str, str]:
    sku, _, competitor = member.partition("|")
    return sku, competitor
