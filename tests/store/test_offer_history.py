"""The offer history's compact entries: what they keep, that both forms are read, and
what an entry costs in a real Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing_service.engine.inputs import CompetitorObservation, ItemFacts
from pricing_service.observations import build_market
from pricing_service.store import keys
from pricing_service.store import store as store_module
from pricing_service.store.offers import (
    HISTORY_STREAM_KEPT,
    OfferStatus,
    history_entry,
    history_entry_as_read,
    history_offer,
    pack_history,
    unpack_history,
)
from pricing_service.store.store import Store

NOW = datetime.now(UTC)
ITEM = ItemFacts(sku="A", currency="USD")


def _offer(
    competitor: str = "rival",
    price: str = "9.00",
    *,
    status: str = "accepted",
    shipping: str | None = "4.99",
    at: datetime = NOW,
) -> OfferStatus:
    observation = CompetitorObservation(
        competitor=competitor,
        price=Decimal(price),
        currency="USD",
        observed_at=at,
        shipping=None if shipping is None else Decimal(shipping),
    )
    reason = None if status == "accepted" else "outlier: 60% under the median"
    return OfferStatus(observation=observation, status=status, reason=reason, received_at=at)


@given(
    price=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999999.99"), places=2),
    shipping=st.none() | st.decimals(min_value=0, max_value=Decimal("999.99"), places=2),
    in_stock=st.booleans(),
    quarantined=st.booleans(),
    observed=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    source=st.sampled_from(["crawler", "feed"]),
)
def test_an_entry_keeps_everything_but_the_last_accepted_offer(
    price: Decimal,
    shipping: Decimal | None,
    in_stock: bool,
    quarantined: bool,
    observed: datetime,
    source: str,
) -> None:
    observation = CompetitorObservation(
        competitor="rival",
        price=price,
        currency="USD",
        observed_at=observed,
        shipping=shipping,
        in_stock=in_stock,
        source=source,
    )
    offer = OfferStatus(
        observation=observation,
        status="quarantined" if quarantined else "accepted",
        reason="outlier" if quarantined else None,
        received_at=observed + timedelta(microseconds=1_234),
        last_accepted=observation if quarantined else None,
    )
    decoded = history_offer(history_entry_as_read(offer))
    assert decoded == offer.model_copy(update={"last_accepted": None})


def test_every_entry_has_the_same_fields_in_the_same_order() -> None:
    # A stream node stores the field names once only for entries that repeat them.
    assert list(history_entry(_offer())) == list(
        history_entry(_offer(status="quarantined", shipping=None))
    )


def test_an_entry_of_the_earlier_form_is_read() -> None:
    offer = _offer(status="quarantined").model_copy(update={"last_accepted": _offer().observation})
    legacy = {b"o": offer.model_dump_json().encode()}
    assert history_offer(legacy) == offer.model_copy(update={"last_accepted": None})


@pytest.mark.anyio
async def test_the_gate_reads_a_history_of_both_forms_newest_first(store: Store) -> None:
    # Written by an earlier version: the offer's JSON in one field.
    old = _offer(price="10.00", at=NOW - timedelta(hours=3))
    await store.redis.xadd(keys.offer_history("A"), {"o": old.model_dump_json()})
    await store.record_offers(
        {
            "A": [
                _offer(price="11.00", at=NOW - timedelta(hours=2)),
                _offer("other", price="50.00", at=NOW - timedelta(hours=2)),
                _offer(price="3.00", status="quarantined", at=NOW - timedelta(hours=1)),
                _offer(price="12.00"),
            ]
        }
    )
    raw_offers, history = (await store.market_reads(["A"], 200))["A"]
    market = build_market(raw_offers, history, ITEM, "rival", {}, NOW, {})
    assert market.own_history == [Decimal("12.00"), Decimal("11.00"), Decimal("10.00")]


@pytest.mark.anyio
async def test_an_entry_costs_under_a_third_of_the_offers_json(store: Store) -> None:
    offers = [_offer(f"competitor-{n % 5}", f"{100 + n}.99") for n in range(500)]
    await store.record_offers({"A": offers})
    for offer in offers:
        await store.redis.xadd("legacy", {"o": offer.model_dump_json()})
    compact = await store.redis.memory_usage(keys.offer_history("A"), samples=0)
    legacy = await store.redis.memory_usage("legacy", samples=0)
    assert compact * 3 < legacy, (compact / 500, legacy / 500)


@pytest.mark.anyio
async def test_the_history_reads_back_newest_first_by_competitor_and_page(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _offer(price="10.00", at=NOW - timedelta(hours=9))
    await store.redis.xadd(keys.offer_history("A"), {"o": old.model_dump_json()})
    others = [_offer("other", f"{20 + n}.00", at=NOW - timedelta(hours=8 - n)) for n in range(5)]
    await store.record_offers({"A": [*others, _offer(price="11.00")]})

    found, cursor = await store.offer_history("A", competitor="rival")
    assert [offer.observation.price for _, offer in found] == [Decimal("11.00"), Decimal("10.00")]
    assert cursor is None
    everything, _ = await store.offer_history("A", limit=3)
    assert [o.observation.competitor for _, o in everything] == ["rival", "other", "other"]

    # A page looks at so many entries at most: cut short, it says where to go on.
    monkeypatch.setattr(store_module, "OFFER_HISTORY_PAGE", 2)
    monkeypatch.setattr(store_module, "OFFER_HISTORY_SCAN", 3)
    pages = []
    cursor = None
    while True:
        found, cursor = await store.offer_history("A", competitor="rival", limit=5, cursor=cursor)
        pages.append([str(offer.observation.price) for _, offer in found])
        if cursor is None:
            break
    assert pages == [["11.00"], [], ["10.00"]]


async def _history(store: Store, until: datetime | None = None) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    cursor = None
    while True:
        page, cursor = await store.offer_history("A", until=until, limit=7, cursor=cursor)
        found += [(entry_id, str(offer.observation.price)) for entry_id, offer in page]
        if cursor is None:
            return found


@pytest.mark.anyio
async def test_older_entries_move_into_blocks_and_still_read_back(store: Store) -> None:
    offers = [
        _offer(f"competitor-{n % 3}", f"{100 + n}.00", at=NOW - timedelta(minutes=400 - n))
        for n in range(HISTORY_STREAM_KEPT + 150)
    ]
    for start in range(0, len(offers), 50):
        await store.record_offers({"A": offers[start : start + 50]})
    before = await _history(store)
    gate_reads = (await store.market_reads(["A"], HISTORY_STREAM_KEPT))["A"][1]

    assert await store.archive_offer_history(["A", "NO-SUCH-SKU"]) == 1
    assert await store.redis.xlen(keys.offer_history("A")) == HISTORY_STREAM_KEPT
    [block] = await store.redis.lrange(keys.offer_history_blocks("A"), 0, -1)
    assert len(unpack_history(block)) == 150
    assert await _history(store) == before  # newest first, across the stream and the block
    assert (await store.market_reads(["A"], HISTORY_STREAM_KEPT))["A"][1] == gate_reads
    assert 0 < await store.redis.ttl(keys.offer_history_blocks("A")) <= 35 * 86_400
    # Filters and bounds reach into the block.
    first_ids = [entry_id for entry_id, _ in before]
    mine, _ = await store.offer_history("A", competitor="competitor-1", limit=1000)
    assert [str(o.observation.price) for _, o in mine] == [
        price for _, price in before if (int(price.split(".")[0]) - 100) % 3 == 1
    ]
    assert len(await _history(store, until=datetime.max.replace(tzinfo=UTC))) == len(before)
    # Nothing more to move until another HISTORY_BLOCK_MIN entries have come.
    assert await store.archive_offer_history(["A"]) == 0
    assert first_ids == [entry_id for entry_id, _ in await _history(store)]


@pytest.mark.anyio
async def test_a_stale_move_changes_nothing_and_old_blocks_go_with_the_retention(
    store: Store,
) -> None:
    offers = [_offer(price=f"{100 + n}.00") for n in range(HISTORY_STREAM_KEPT + 120)]
    await store.record_offers({"A": offers})
    run = await store.redis.xrange(keys.offer_history("A"), count=120)
    entries = [(entry_id.decode(), fields) for entry_id, fields in reversed(run)]
    expired = b"1000 1\n" + b"x"  # a block whose newest entry is from 1970
    await store.redis.rpush(keys.offer_history_blocks("A"), expired)
    assert await store.archive_offer_history(["A"]) == 1
    blocks = await store.redis.lrange(keys.offer_history_blocks("A"), 0, -1)
    assert expired not in blocks
    assert len(blocks) == 1
    # The same entries again, as a second sweep that read them before the first moved them.
    retention_ms = int(store.retention.total_seconds() * 1000)
    stale = [entries[-1][0], entries[0][0], len(entries), pack_history(entries)]
    stale += [retention_ms, 0, f"{entries[0][0].split('-')[0]}-99999"]
    script_keys = [keys.offer_history("A"), keys.offer_history_blocks("A")]
    assert await store._archive_history(keys=script_keys, args=stale) == 0
    assert await store.redis.xlen(keys.offer_history("A")) == HISTORY_STREAM_KEPT
    assert await store.redis.llen(keys.offer_history_blocks("A")) == 1


@pytest.mark.anyio
async def test_long_histories_move_at_most_a_block_at_a_time_in_bounded_reads(
    store: Store,
) -> None:
    # As the first sweep after an upgrade finds them: 2,300 entries per SKU, 6 SKUs, more
    # than one read's worth together.
    skus = [f"S{n}" for n in range(6)]
    offers = [_offer(price=f"{100 + n}.00") for n in range(HISTORY_STREAM_KEPT + 2_100)]
    for sku in skus:
        for start in range(0, len(offers), 500):
            await store.record_offers({sku: offers[start : start + 500]})
    assert await store.archive_offer_history(skus) == 6
    assert {await store.redis.xlen(keys.offer_history(sku)) for sku in skus} == {300}
    assert await store.archive_offer_history(skus) == 6
    for sku in skus:
        assert await store.redis.xlen(keys.offer_history(sku)) == HISTORY_STREAM_KEPT
        sizes = [
            len(unpack_history(block))
            for block in await store.redis.lrange(keys.offer_history_blocks(sku), 0, -1)
        ]
        assert sizes == [100, 2_000]  # newest block first
