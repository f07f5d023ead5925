#!/usr/bin/env python3
"""Container health check for every role of the one image: exit 0 when healthy, else 1.

    pricing-healthcheck [URL]

With a URL (or ``PRICING_HEALTHCHECK_URL``) it asks that. Otherwise it asks, on
127.0.0.1, each place a role answers: the API's ``/healthz`` on ``PRICING_PORT``, then the
repricer's, scheduler's and first crawler worker's ``/metrics`` on their metrics ports.
A container runs one role, so the first that answers 200 is its own. Standard library
only: it runs in the image's virtualenv without importing the service.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence

TIMEOUT_SECONDS = 3.0
#: Each role's port variable and its default (pricing_service/settings.py), and its path.
ROLE_ENDPOINTS = (
    ("PRICING_PORT", 8000, "/healthz"),
    ("PRICING_REPRICER_METRICS_PORT", 9101, "/metrics"),
    ("PRICING_SCHEDULER_METRICS_PORT", 9102, "/metrics"),
    ("PRICING_CRAWLER_METRICS_PORT", 9103, "/metrics"),
)


def candidate_urls(argv: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    explicit = argv[0] if argv else environ.get("PRICING_HEALTHCHECK_URL")
    if explicit:
        return [explicit]
    urls = []
    for variable, default, path in ROLE_ENDPOINTS:
        port = int(environ.get(variable) or default)
        if port:  # 0 turns a role's metrics off
            urls.append(f"http://127.0.0.1:{port}{path}")
    return urls


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    urls = candidate_urls(argv, environ)
    if any(answers(url) for url in urls):
        return 0
    print(f"unhealthy: no answer from {', '.join(urls) or 'nothing to ask'}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
