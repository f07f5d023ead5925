"""The crawler's Redis keys, next to the service's (``pricing_service.store.keys``).

Per-SKU keys carry the ``{SKU}`` hash tag so a SKU's listings live on the shard holding
the rest of its data. Queue keys are global.
"""

from __future__ import annotations

from pricing_service.store.keys import PREFIX

#: Sorted set: ``sku|competitor`` -> the epoch second its next crawl is due.
DUE = "crawl:due"
#: Stream of crawl jobs; the workers' consumer group reads it.
JOBS_STREAM = "crawl:jobs"
JOBS_GROUP = "crawlers"
#: Hash: ``sku|competitor`` -> id of its job in the queue. A listing in it is not queued again.
IN_FLIGHT = "crawl:inflight"
#: Stream of jobs given up after too many deliveries.
DEAD_LETTER_STREAM = "crawl:dead"
#: Stream of every job's outcome, in the order they were recorded.
OUTCOMES_STREAM = "crawl:outcomes"


def listings(sku: str) -> str:
    """Hash: competitor id -> listing JSON (url, frequency)."""
    return f"{PREFIX}:{{{sku}}}:listings"


def outcome(job_id: str) -> str:
    """String: the job's outcome JSON, written once (SET NX)."""
    return f"crawl:outcome:{job_id}"


def rate(domain: str) -> str:
    """String: the domain's GCRA theoretical arrival time, in microseconds."""
    return f"crawl:rate:{domain}"


def slots(domain: str) -> str:
    """Sorted set: lease id -> expiry (epoch ms) of the domain's requests in flight."""
    return f"crawl:slots:{domain}"


def due_member(sku: str, competitor: str) -> str:
    return f"{sku}|{competitor}"


def parse_due_member(member: str) -> tuple[str, str]:
    sku, _, competitor = member.partition("|")
    return sku, competitor
