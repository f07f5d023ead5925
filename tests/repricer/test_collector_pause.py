"""The garbage collector pause around chunk planning (``repricer.full``)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from pricing_service.repricer.full import _CollectorPause


@pytest.fixture
def collector_on() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.enable()
    try:
        yield
    finally:
        if not was_enabled:
            gc.disable()


@pytest.mark.usefixtures("collector_on")
def test_pauses_from_two_threads_nest_and_the_collector_comes_back() -> None:
    pause = _CollectorPause()
    inside = threading.Event()
    leave = threading.Event()

    def other_thread() -> None:
        with pause.paused():
            inside.set()
            leave.wait(5)

    thread = threading.Thread(target=other_thread)
    with pause.paused():
        assert not gc.isenabled()
        thread.start()
        assert inside.wait(5)
    # The other thread still plans: the collector stays off until it is done.
    assert not gc.isenabled()
    leave.set()
    thread.join(5)
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_on")
def test_a_failure_inside_still_ends_the_pause() -> None:
    pause = _CollectorPause()
    with pytest.raises(RuntimeError), pause.paused():
        raise RuntimeError("planning failed")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        with _CollectorPause().paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        if was_enabled:
            gc.enable()
