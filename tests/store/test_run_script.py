"""Script calls packed by the store itself (``Store.run_script``), against a real Redis."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.exceptions import ResponseError

from pricing_service.repricer.inputs import input_keys
from pricing_service.store import keys
from pricing_service.store.store import SCRIPT_BATCH, Store, pack_command

pytestmark = pytest.mark.anyio

#: Echoes its keys and arguments, or fails when asked to.
_ECHO = """
if ARGV[1] == 'fail' then return redis.error_reply('asked to fail') end
return {KEYS, ARGV}
"""


def test_a_packed_command_is_what_redis_py_sends() -> None:
    parts = [b"EVALSHA", b"abc", b"2", b"key:1", b"", b"caf\xc3\xa9 \r\n", b"x" * 300]
    assert pack_command(parts) == b"".join(Connection().pack_command(*parts))


async def test_run_script_passes_keys_and_arguments_through(store: Store) -> None:
    script = store.redis.register_script(_ECHO)
    reply = await store.run_script(script, [b"a", b"b"], [b"1", b"", b"two words"])
    assert reply == [[b"a", b"b"], [b"1", b"", b"two words"]]


async def test_run_script_loads_a_flushed_script_and_survives_errors(store: Store) -> None:
    script = store.redis.register_script(_ECHO)
    await store.redis.script_flush()  # what a restarted Redis looks like
    assert await store.run_script(script, [], [b"ok"]) == [[], [b"ok"]]
    with pytest.raises(ResponseError, match="asked to fail"):
        await store.run_script(script, [], [b"fail"])
    # The failed call left its connection in a state fit for the next one.
    assert await store.run_script(script, [], [b"again"]) == [[], [b"again"]]


async def test_run_script_reconnects_after_its_connection_is_dropped(
    store: Store, clean_redis: str
) -> None:
    script = store.redis.register_script(_ECHO)
    assert await store.run_script(script, [], [b"before"]) == [[], [b"before"]]
    pooled = await store.redis.client_id()  # the pool's one connection, which run_script used
    other = aioredis.Redis.from_url(clean_redis)
    try:
        # What a Redis restart or a network cut does to it.
        assert await other.client_kill_filter(_id=str(pooled)) == 1
    finally:
        await other.aclose()
    assert await store.run_script(script, [], [b"after"]) == [[], [b"after"]]


async def test_read_inputs_keeps_each_script_call_short_and_the_rows_in_order(
    store: Store,
) -> None:
    skus = [f"SKU-{n}" for n in range(2 * SCRIPT_BATCH + 3)]
    async with store.redis.pipeline(transaction=False) as pipe:
        for sku in skus:
            pipe.set(keys.item(sku), sku)
        pipe.hset(keys.sales(skus[-1]), "day", "4")
        await pipe.execute()
    await store.read_inputs([input_keys(skus[0], [""])])  # loads the script

    def evalsha_calls(stats: dict[str, dict[str, int]]) -> int:
        return stats["cmdstat_evalsha"]["calls"]

    before = evalsha_calls(await store.redis.info("commandstats"))
    rows = await store.read_inputs([input_keys(sku, [""]) for sku in skus])
    after = evalsha_calls(await store.redis.info("commandstats"))
    # A script keeps Redis from every other client while it runs: no call reads more
    # than SCRIPT_BATCH SKUs.
    assert after - before == 3
    assert [row[0] for row in rows] == [sku.encode() for sku in skus]
    assert rows[-1] == [skus[-1].encode(), [], None, [b"day", b"4"], None, None]
