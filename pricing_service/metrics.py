"""Every Prometheus metric the service exports, in one place.

Base units, ``_total`` counters, ``_seconds`` histograms, and no SKU, URL or segment
labels: label values come from small fixed sets (route templates, strategies, guardrails).

With ``PROMETHEUS_MULTIPROC_DIR`` set (``pricing serve --workers N`` sets it), values live
in files there and a scrape of any worker sums every worker's: each gauge says how its
workers' values combine (``multiprocess_mode``), and ``Info`` metrics are not exported.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
    multiprocess,
    start_http_server,
)

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

_Metric = TypeVar("_Metric")
#: Every :func:`one_role` metric's getter (the deploy tests make them all to list every
#: series the service can export).
ONE_ROLE_METRICS: list[Callable[[], object]] = []


def one_role(make: Callable[[], _Metric]) -> Callable[[], _Metric]:
    """A metric that only one role sets (the repricer's queue length, the API's cache),
    made on first use, so that it is exported only by the processes that set it. Made at
    import, every role would export it at 0: beside the repricer's queue length, the API's
    constant 0 made ``PricingRepricerBacklogNotDraining`` fire while the queue drained."""
    lock = threading.Lock()  # first uses can come from worker threads
    made: list[_Metric] = []

    def metric() -> _Metric:
        if not made:
            with lock:
                if not made:
                    made.append(make())
        return made[0]

    ONE_ROLE_METRICS.append(metric)
    return metric


REQUEST_SECONDS = Histogram(
    "pricing_http_request_duration_seconds",
    "HTTP request latency by route template and status class.",
    ["method", "route", "status_class"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
LOOKUPS = Counter(
    "pricing_lookups_total", "Price lookups answered, by result.", ["result"]
)  # result: hit | miss | not_found | stale | unavailable (batch, store unreachable)
LOOKUP_SEGMENTS_IGNORED = Counter(
    "pricing_lookup_segments_ignored_total",
    "Price lookups whose segment named a dimension or value the ruleset does not declare "
    "(ignored: the lookup gets the price of the segment the rest maps to, a typo the "
    "default price).",
)
DECISIONS = Counter("pricing_decisions_total", "Decisions computed, by strategy.", ["strategy"])
PRICE_CHANGES = Counter("pricing_price_changes_total", "Published schedules that changed a price.")
PUBLISHES = Counter("pricing_publishes_total", "Schedules published, by outcome.", ["outcome"])
PRICING_FAILURES = Counter(
    "pricing_failures_total",
    "SKU-segment pricings that failed and kept the published price, by reason: inputs "
    "(stored values that do not validate) or engine.",
    ["reason"],
)
GUARDRAIL_CLAMPS = Counter(
    "pricing_guardrail_clamps_total",
    "Decisions where a guardrail fired, by guardrail.",
    ["guardrail"],
)
LOOP_BREAKER_TRIPS = Counter(
    "pricing_loop_breaker_trips_total", "Prices held by loop protection, by kind.", ["kind"]
)
REPRICER_LAG_SECONDS = Histogram(
    "pricing_repricer_lag_seconds",
    "Seconds from an input change to its published decision.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
dirty_queue_length = one_role(
    lambda: Gauge(
        "pricing_dirty_queue_length",
        "SKUs waiting to be repriced (pending and undelivered).",
        multiprocess_mode="mostrecent",
    )
)
RULE_RELOADS = Counter("pricing_rule_reloads_total", "Rule reloads, by outcome.", ["outcome"])
#: Registered by :func:`record_rule_reload`, so that only processes that load rules export
#: it: a scheduler's default 0 would fire ``PricingRuleReloadFailed`` for ever.
rule_last_reload_successful = one_role(
    lambda: Gauge(
        "pricing_rule_last_reload_successful",
        "1 while the rule files on disk are in force; 0 while an edit is rejected and the "
        "last good ruleset serves (a failed reload is not retried until the files change "
        "again).",
        multiprocess_mode="livemin",
    )
)
ruleset_info = one_role(lambda: Info("pricing_ruleset", "The ruleset in force."))
ELASTICITY_FIT_SECONDS = Histogram(
    "pricing_elasticity_fit_duration_seconds",
    "Time to fit every SKU's elasticity (reads, fit and writes).",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
ELASTICITY_ITEMS_FITTED = Counter(
    "pricing_elasticity_items_fitted_total", "Elasticity estimates produced by fits."
)
REDIS_ERRORS = Counter(
    "pricing_redis_errors_total", "Failed Redis operations, by operation.", ["operation"]
)

# -- the API process's schedule cache ---------------------------------------------------------
# The gauges are set when /metrics is scraped: they are ages and sizes, not events.

CACHE_HITS = Counter(
    "pricing_schedule_cache_hits_total", "Schedules looked up and answered from the cache."
)
CACHE_MISSES = Counter(
    "pricing_schedule_cache_misses_total",
    "Schedules looked up and not answered from the cache (read from Redis, or unavailable).",
)
cache_entries = one_role(
    lambda: Gauge(
        "pricing_schedule_cache_entries",
        "Schedules held in the cache (summed over the server's worker processes).",
        multiprocess_mode="livesum",
    )
)
cache_staleness_seconds = one_role(
    lambda: Gauge(
        "pricing_schedule_cache_staleness_seconds",
        "Seconds since the cache last followed the changes stream; 0 while it does.",
        multiprocess_mode="livemax",
    )
)
redis_contact_age_seconds = one_role(
    lambda: Gauge(
        "pricing_redis_last_contact_age_seconds",
        "Seconds since Redis last answered this API process (the cache's reads).",
        multiprocess_mode="livemax",
    )
)


# -- crawlers ---------------------------------------------------------------------------------
# Labelled by competitor id (a short list in rules/competitors.yaml) and fixed outcome,
# method and reason sets; never by URL or SKU.

CRAWL_FETCHES = Counter(
    "pricing_crawl_fetches_total",
    "Page fetches, by competitor and outcome.",
    ["competitor", "outcome"],
)
CRAWL_FETCH_SECONDS = Histogram(
    "pricing_crawl_fetch_duration_seconds",
    "Time to fetch one page, retries and politeness waits included.",
    ["competitor"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
CRAWL_EXTRACTIONS = Counter(
    "pricing_crawl_extractions_total", "Pages read, by extraction method.", ["method"]
)
CRAWL_OBSERVATIONS = Counter(
    "pricing_crawl_observations_total",
    "Crawled observations through the quality gate, by status and reason (empty if accepted).",
    ["competitor", "status", "reason"],
)
CRAWL_OBSERVATION_AGE_SECONDS = Gauge(
    "pricing_crawl_observation_age_seconds",
    "Age of the previous accepted observation a new crawl replaces, per competitor.",
    ["competitor"],
    multiprocess_mode="mostrecent",
)
CRAWL_LAST_ACCEPTED_SECONDS = Gauge(
    "pricing_crawl_last_accepted_timestamp_seconds",
    "When a crawl last stored an accepted observation, per competitor (Unix time, kept in "
    "Redis and exported by the scheduler): time() minus it is how stale the freshest "
    "crawled price is.",
    ["competitor"],
    multiprocess_mode="max",
)
CRAWL_MEDIAN_LISTING_PERIOD_SECONDS = Gauge(
    "pricing_crawl_median_listing_period_seconds",
    "The median crawl period of a competitor's listings (kept in Redis and exported by "
    "the scheduler, for competitors with listings): how stale its freshest price may be "
    "while its crawls work.",
    ["competitor"],
    multiprocess_mode="max",
)
CRAWL_LISTED_SINCE_SECONDS = Gauge(
    "pricing_crawl_listed_since_timestamp_seconds",
    "When a competitor with listings had its first one stored (Unix time, kept in Redis "
    "and exported by the scheduler): with no accepted observation since, its crawls have "
    "never worked.",
    ["competitor"],
    multiprocess_mode="max",
)
crawl_queue_depth = one_role(
    lambda: Gauge(
        "pricing_crawl_queue_depth",
        "Crawl jobs queued and not yet acknowledged (pending + lag).",
        multiprocess_mode="mostrecent",
    )
)
CRAWL_ROBOTS_DISALLOWS = Counter(
    "pricing_crawl_robots_disallows_total",
    "URLs not fetched because robots.txt says no.",
    ["competitor"],
)
CRAWL_DEAD_LETTERS = Counter(
    "pricing_crawl_dead_letters_total", "Jobs given up after too many deliveries."
)
CRAWL_JOBS = Counter(
    "pricing_crawl_jobs_total",
    "Crawl jobs finished, by competitor and outcome: the ones no fetch counts too "
    "(unknown_listing, unknown_item, dead_letter).",
    ["competitor", "outcome"],
)

CRAWL_JOBS_GIVEN_BACK = Counter(
    "pricing_crawl_jobs_given_back_total",
    "New crawl jobs a worker put back at the tail of the queue unfetched, by competitor: "
    "it already held as many of that competitor's jobs as its concurrency lets run.",
    ["competitor"],
)


# -- exposition ---------------------------------------------------------------------------------


def exposition() -> bytes:
    """The text exposition: this process's metrics, or in multiprocess mode every worker's
    combined."""
    directory = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    if not directory:
        return generate_latest()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def record_rule_reload(ok: bool) -> None:
    """Count a load of the rule files, and export whether the files on disk are in force."""
    RULE_RELOADS.labels(outcome="ok" if ok else "error").inc()
    rule_last_reload_successful().set(1 if ok else 0)


def serve_metrics(port: int) -> None:
    """This process's metrics on ``:port/metrics`` (a background thread); 0: none."""
    if port:
        start_http_server(port)
        logging.getLogger(__name__).info("metrics on :%d/metrics", port, extra={"port": port})


def reset_multiprocess_dir(directory: Path) -> None:
    """Empty ``directory`` before the workers start, so that counters start from zero with
    the server and no earlier run's gauges linger. This process's own files stay: it made
    them on import when the directory was already configured, and still writes them."""
    directory.mkdir(parents=True, exist_ok=True)
    own = f"_{os.getpid()}.db"
    for path in directory.glob("*.db"):
        if not path.name.endswith(own):
            path.unlink(missing_ok=True)


def forget_this_process() -> None:
    """On a worker's way out: its ``live*`` gauges leave the combined values (what its
    counters and histograms counted stays)."""
    directory = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    if directory:
        multiprocess.mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]
