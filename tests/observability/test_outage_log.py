"""A loop failing through a Redis outage logs a few lines, not two a second."""

from __future__ import annotations

import logging

import pytest

from pricing_service.logs import OutageLog


def test_an_outage_is_the_first_error_a_line_a_minute_and_the_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    outage = OutageLog(logging.getLogger("test.outage"), "repricer consume", clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="test.outage"):
        for _ in range(150):  # 150 s of failures, one a second
            outage.failed(ConnectionError("Connection refused"))
            now[0] += 1
        outage.succeeded()
        outage.succeeded()  # working on: nothing more to say
        outage.failed(ConnectionError("again"))
    assert [record.getMessage() for record in caplog.records] == [
        "repricer consume: Connection refused; retrying",
        "repricer consume: still failing after 60 s (61 attempts): Connection refused",
        "repricer consume: still failing after 120 s (121 attempts): Connection refused",
        "repricer consume: working again after 150 s (150 failed attempts)",
        "repricer consume: again; retrying",
    ]
