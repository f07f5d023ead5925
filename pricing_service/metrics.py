"""Every Prometheus metric the service exports, in one place.

Base units, ``_total`` counters, ``_seconds`` histograms, and no SKU, URL or segment
labels: label values come from small fixed sets (route templates, strategies, guardrails).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

REQUEST_SECONDS = Histogram(
    "pricing_http_request_duration_seconds",
    "HTTP request latency by route template and status class.",
    ["method", "route", "status_class"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
LOOKUPS = Counter(
    "pricing_lookups_total", "Price lookups answered, by result.", ["result"]
)  # result: hit | miss | not_found | stale
DECISIONS = Counter("pricing_decisions_total", "Decisions computed, by strategy.", ["strategy"])
PRICE_CHANGES = Counter("pricing_price_changes_total", "Published schedules that changed a price.")
PUBLISHES = Counter("pricing_publishes_total", "Schedules published, by outcome.", ["outcome"])
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
DIRTY_QUEUE_LENGTH = Gauge(
    "pricing_dirty_queue_length", "SKUs waiting to be repriced (pending and undelivered)."
)
RULE_RELOADS = Counter("pricing_rule_reloads_total", "Rule reloads, by outcome.", ["outcome"])
RULESET = Info("pricing_ruleset", "The ruleset in force.")
REDIS_ERRORS = Counter(
    "pricing_redis_errors_total", "Failed Redis operations, by operation.", ["operation"]
)
