"""Stopping the stream workers (repricer, crawler) without losing work.

SIGTERM or SIGINT sets an event: the worker takes no new entries and finishes those in
hand, which it acknowledges once their results are written. Work still running when the
grace period ends is cancelled, and its entries are released: they stay pending, made
claimable at once by any other worker's XAUTOCLAIM instead of after the claim timeout.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Collection

import redis.asyncio as aioredis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

#: Released entries look idle this long (ms): past any worker's claim timeout.
RELEASED_IDLE_MS = 7 * 86_400 * 1000


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (on the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    return stop


async def run_until_stopped(
    work: Awaitable[None], stop: asyncio.Event, grace_seconds: float
) -> None:
    """Run ``work`` (which ends by itself once ``stop`` is set) to its end; if it is still
    running ``grace_seconds`` after ``stop``, cancel it. Its exceptions propagate."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            await asyncio.wait({task}, timeout=grace_seconds)
        if not task.done():
            logger.warning("work still running %.1f s after the stop: cancelled", grace_seconds)
            task.cancel()
            await asyncio.wait({task})
            if task.cancelled():
                return
        await task
    finally:
        stopped.cancel()


async def release(
    redis: aioredis.Redis,
    stream: str,
    group: str,
    consumer: str,
    entry_ids: Collection[bytes | str],
) -> None:
    """Hand stream entries this consumer holds back to the group without acknowledging
    them. Entries already acknowledged are left alone (XCLAIM skips them)."""
    if not entry_ids:
        return
    try:
        await redis.xclaim(
            stream,
            group,
            consumer,
            min_idle_time=0,
            message_ids=list(entry_ids),
            idle=RELEASED_IDLE_MS,
            justid=True,
        )
    except RedisError as exc:  # still pending: claimed once idle for the claim timeout
        logger.warning("could not release %d entries of %s: %s", len(entry_ids), stream, exc)
        return
    logger.info("released %d unfinished entries of %s", len(entry_ids), stream)
