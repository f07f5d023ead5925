"""Rule previews read the store as the repricer does: what they predict is what a reprice
with the candidate publishes, segment by segment; and ``pricing rules preview``."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pricing_service.engine.inputs import CompetitorObservation
from pricing_service.repricer.full import reprice_all
from pricing_service.repricer.pricer import Pricer
from pricing_service.rules import preview as preview_module
from pricing_service.rules.cli import EXIT_CHANGE_TOO_LARGE, app
from pricing_service.rules.preview import preview_catalogue
from pricing_service.settings import get_settings
from pricing_service.store.offers import OfferStatus
from pricing_service.store.store import Override, Store
from tests.repricer.helpers import PLAIN_RULES, compile_rules, item, write_rules

FRIDAY_NOON = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)
#: The app's discount grows from 5% to 30%, and no price may move by more than 10% at once:
#: the app segment's step is bounded by its own price in force (47.50), not the default
#: segment's (50.00).
CANDIDATE = PLAIN_RULES.replace('discount: "5%"', 'discount: "30%"').replace(
    "default:\n", 'guardrails:\n  max_change: "10%"\ndefault:\n', 1
)


async def _seed(store: Store, rules: Path, count: int = 3) -> None:
    await store.put_items([item(f"SKU-{n}", current_price=Decimal("50.00")) for n in range(count)])
    published = await reprice_all(
        Pricer(store, boundary_lead_seconds=60), compile_rules(rules), FRIDAY_NOON
    )
    assert published.published == 2 * count


@pytest.mark.anyio
async def test_a_preview_predicts_what_a_reprice_with_the_candidate_publishes(
    store: Store, tmp_path: Path
) -> None:
    await _seed(store, write_rules(tmp_path / "live"))
    candidate = compile_rules(write_rules(tmp_path / "candidate", CANDIDATE))
    at = FRIDAY_NOON + timedelta(minutes=1)

    preview = await preview_catalogue(store, candidate, at)

    assert preview.missing == []
    assert (preview.summary.evaluated, preview.summary.changed) == (6, 3)
    assert {(c.sku, c.segment) for c in preview.changes} == {
        (f"SKU-{n}", "channel:app") for n in range(3)
    }
    for change in preview.changes:
        assert (change.current, change.proposed) == (Decimal("47.50"), Decimal("42.75"))
        assert change.guardrails_fired == ("max_change",)
        assert change.change_percent == Decimal("-10.00")
        # Where the step limit lets it go, repricing after repricing: 30% off 50.00.
        assert (change.heading, change.heading_from) == (Decimal("35.00"), Decimal("47.50"))
        assert change.heading_change_percent == Decimal("-26.32")
        assert change.heading_settles
    assert preview.summary.heading_changed == 3
    assert preview.summary.max_abs_heading_change_percent == Decimal("26.32")
    before = {
        (sku, segment): (await store.get_schedule(sku, segment))
        for sku in ("SKU-0", "SKU-1", "SKU-2")
        for segment in ("", "channel:app")
    }
    await reprice_all(Pricer(store, boundary_lead_seconds=60), candidate, at)
    predicted = {(c.sku, c.segment): c.proposed for c in preview.changes}
    for (sku, segment), old in before.items():
        published = await store.get_schedule(sku, segment)
        assert old is not None
        assert published is not None
        price_then = old.window_at(int(at.timestamp()))
        price_now = published.window_at(int(at.timestamp()))
        assert price_then is not None
        assert price_now is not None
        assert price_now.price == predicted.get((sku, segment), price_then.price)


@pytest.mark.anyio
async def test_a_preview_counts_prices_a_guardrail_keeps_and_names_unknown_skus(
    store: Store, tmp_path: Path
) -> None:
    await _seed(store, write_rules(tmp_path / "live"), count=1)
    held_back = PLAIN_RULES.replace('discount: "5%"', 'discount: "30%"').replace(
        "default:\n", "guardrails:\n  cooldown: 6h\ndefault:\n", 1
    )
    candidate = compile_rules(write_rules(tmp_path / "candidate", held_back))

    preview = await preview_catalogue(
        store, candidate, FRIDAY_NOON + timedelta(minutes=1), ["SKU-0", "NOPE", "SKU-0"]
    )

    assert preview.missing == ["NOPE"]
    # The app price was published a minute before: the cooldown holds it there.
    assert preview.summary.held == {"cooldown": 1}
    assert (preview.summary.evaluated, preview.summary.changed) == (2, 0)
    # The next repricing changes nothing, and the edit's whole effect still shows: once
    # the cooldown ends, the app price goes to 30% off.
    [held] = preview.changes
    assert (held.segment, held.current, held.proposed) == (
        "channel:app",
        Decimal("47.50"),
        Decimal("47.50"),
    )
    assert (held.heading, held.heading_change_percent) == (Decimal("35.00"), Decimal("-26.32"))
    assert preview.summary.heading_changed == 1


def _json(output: str) -> Any:
    """The JSON document of a command's output, past what stderr (mixed into the output by
    click before 8.2) may have put before it."""
    return json.loads(output[output.index("{") :])


def _seed_for_the_cli(clean_redis: str, live: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two SKUs priced by ``live`` in the store the command line will read."""

    async def seed() -> None:
        store = Store.from_url(clean_redis, retention=timedelta(days=35))
        try:
            await _seed(store, live, count=2)
        finally:
            await store.close()

    asyncio.run(seed())
    monkeypatch.setenv("REDIS_URL", clean_redis)
    get_settings.cache_clear()


def test_the_cli_previews_gates_and_refuses_invalid_rules(
    clean_redis: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = write_rules(tmp_path / "live")
    candidate = write_rules(tmp_path / "candidate", CANDIDATE)

    _seed_for_the_cli(clean_redis, live, monkeypatch)
    runner = CliRunner()
    at = (FRIDAY_NOON + timedelta(minutes=1)).isoformat()
    try:
        shown = runner.invoke(app, ["preview", str(candidate), "--at", at, "--top", "1"])
        assert shown.exit_code == 0, shown.output
        assert (
            "4 SKU and segments priced, 2 would change at the next repricing (0 up, 2 down)"
            in shown.output
        )
        assert "2 are held back short of where the rules take them" in shown.output
        assert "headings up to 26.32% away" in shown.output
        assert "Largest changes (1 of 2)" in shown.output
        # Not cut to 80 columns in a pipe: every value of the row is there whole.
        assert "│ SKU-0 │ channel:app │ USD      │   47.50 │ 42.75 │   -10.00 │   35.00 │" in (
            shown.output
        )

        as_json = runner.invoke(
            app, ["preview", str(candidate), "--at", at, "--json", "--sku", "SKU-1"]
        )
        assert as_json.exit_code == 0, as_json.output
        document = _json(as_json.output)
        assert document["summary"]["changed"] == 1
        assert document["changes"] == [
            {
                "sku": "SKU-1",
                "segment": "channel:app",
                "currency": "USD",
                "current": "47.50",
                "proposed": "42.75",
                "change": "-4.75",
                "change_percent": "-10.00",
                "rule_id": "app-discount",
                "strategy": "discount",
                "guardrails_fired": ["max_change"],
                "answered_by": None,
                "heading": "35.00",
                "heading_from": "47.50",
                "heading_change_percent": "-26.32",
                "heading_settles": True,
                "heading_until": None,
            }
        ]
        assert document["against"] == "prices in force"
        against = runner.invoke(
            app, ["preview", str(candidate), "--at", at, "--json", "--against", str(live)]
        )
        assert against.exit_code == 0, against.output
        assert _json(against.output)["against"] == compile_rules(live).version

        # The next step is 10%, the step limit; where it heads is 26.32% away.
        gated = runner.invoke(app, ["preview", str(candidate), "--at", at, "--fail-above", "20"])
        assert gated.exit_code == EXIT_CHANGE_TOO_LARGE
        assert (
            "2 prices would move by more than 20%, at once or where it is heading "
            "(largest 26.32%)" in gated.output
        )
        within = runner.invoke(app, ["preview", str(candidate), "--at", at, "--fail-above", "27"])
        assert within.exit_code == 0, within.output

        (candidate / "rules.yaml").write_text(CANDIDATE.replace("priority: 20", "priority: x"))
        broken = runner.invoke(app, ["preview", str(candidate), "--at", at])
        assert broken.exit_code == 1
        assert f"{candidate / 'rules.yaml'}:" in broken.output
        assert "nothing previewed" in broken.output
    finally:
        get_settings.cache_clear()


@pytest.mark.anyio
async def test_against_another_ruleset_only_the_edit_shows(store: Store, tmp_path: Path) -> None:
    live = write_rules(tmp_path / "live")
    await _seed(store, live, count=2)
    # Prices already moving (an hour on, every SKU's list price went up) show against
    # the prices in force, not against the live rules.
    await store.put_items(
        [item(f"SKU-{n}", "60.00", current_price=Decimal("50.00")) for n in range(2)]
    )
    at = FRIDAY_NOON + timedelta(hours=1)
    baseline = compile_rules(live)
    assert (await preview_catalogue(store, baseline, at)).summary.changed == 4
    assert (await preview_catalogue(store, baseline, at, baseline=baseline)).changes == []

    candidate = compile_rules(write_rules(tmp_path / "candidate", CANDIDATE))
    preview = await preview_catalogue(store, candidate, at, baseline=baseline)
    # Live: 60.00 by default, 57.00 in the app. The candidate's app price: 30% off, but
    # at most 10% from the price the repricer starts from (its own, 47.50).
    assert [(c.sku, c.segment, c.current, c.proposed) for c in preview.changes] == [
        ("SKU-0", "", Decimal("60.00"), Decimal("55.00")),
        ("SKU-0", "channel:app", Decimal("57.00"), Decimal("42.75")),
        ("SKU-1", "", Decimal("60.00"), Decimal("55.00")),
        ("SKU-1", "channel:app", Decimal("57.00"), Decimal("42.75")),
    ]


@pytest.mark.anyio
async def test_a_discount_that_would_raise_a_price_is_counted(store: Store, tmp_path: Path) -> None:
    await store.put_items([item("SKU-0", "50.00", current_price=Decimal("40.00"))])
    everyday = PLAIN_RULES.replace("list_price: true", "fixed: 40")
    candidate = compile_rules(write_rules(tmp_path / "candidate", everyday))
    baseline = compile_rules(write_rules(tmp_path / "live", everyday[: everyday.index("rules:")]))
    preview = await preview_catalogue(store, candidate, FRIDAY_NOON, baseline=baseline)
    [app] = preview.changes
    # 5% off the list price (47.50) is above the everyday 40.00.
    assert (app.segment, app.strategy, app.proposed) == (
        "channel:app",
        "discount",
        Decimal("47.50"),
    )
    assert app.discount_raises
    assert preview.summary.discounts_up == 1


@pytest.mark.anyio
async def test_a_rule_that_covers_no_sku_previewed_is_named(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.put_items(
        [item("HOSE", category="garden"), item("CHAIR", category="garden"), item("LAMP")]
    )
    typo = PLAIN_RULES + (
        "  - id: weekend-garden\n"
        "    description: Garden items 10% off.\n"
        "    owner: test@example.com\n"
        "    priority: 30\n"
        "    match: { categories: [Garden] }\n"  # the catalogue says garden
        '    strategy: { discount: "10%" }\n'
    )
    candidate = compile_rules(write_rules(tmp_path / "typo", typo))
    preview = await preview_catalogue(store, candidate, FRIDAY_NOON)
    assert preview.summary.unmatched_rules == ["weekend-garden"]
    fixed = compile_rules(write_rules(tmp_path / "fixed", typo.replace("[Garden]", "[garden]")))
    # Counted over every chunk: each SKU in a chunk of its own.
    monkeypatch.setattr(preview_module, "PREVIEW_CHUNK", 1)
    one_by_one = await preview_catalogue(store, fixed, FRIDAY_NOON, ["LAMP", "NOPE", "HOSE"])
    assert one_by_one.summary.unmatched_rules == []
    lamp_only = await preview_catalogue(store, fixed, FRIDAY_NOON, ["LAMP"])
    assert lamp_only.summary.unmatched_rules == ["weekend-garden"]


FOLLOW_RIVAL = """
timezone: America/New_York
competitors:
  rival: { name: Rival }
default:
  description: Match the rival, if seen within a day.
  owner: test@example.com
  strategy:
    competitor: { action: match, max_age: 1d }
  fallback:
    - list_price: true
"""


@pytest.mark.anyio
async def test_a_preview_ahead_takes_the_market_as_it_is_now(store: Store, tmp_path: Path) -> None:
    # Aged as stored, today's offer would be two weeks old then, and every competitor rule
    # would seem to fall back to the list price.
    now = datetime.now(UTC)
    await store.put_items([item("SKU-0", current_price=Decimal("50.00"))])
    seen = CompetitorObservation(
        competitor="rival", price=Decimal("44.00"), currency="USD", observed_at=now
    )
    await store.put_offers("SKU-0", [OfferStatus(observation=seen, received_at=now)])
    rules = compile_rules(write_rules(tmp_path / "rules", FOLLOW_RIVAL))

    ahead = await preview_catalogue(store, rules, now + timedelta(days=14))

    [change] = ahead.changes
    assert (change.proposed, change.strategy) == (Decimal("44.00"), "competitor")


def test_a_segment_the_candidate_no_longer_prices_shows_the_price_its_lookups_would_get(
    clean_redis: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = write_rules(tmp_path / "live")
    # The edit removes the app's own rule: app lookups fall back to the default price.
    without_app = write_rules(
        tmp_path / "candidate", PLAIN_RULES[: PLAIN_RULES.index("rules:")] + "rules: []\n"
    )

    _seed_for_the_cli(clean_redis, live, monkeypatch)
    runner = CliRunner()
    at = (FRIDAY_NOON + timedelta(minutes=1)).isoformat()
    try:
        command = ["preview", str(without_app), "--at", at, "--against", str(live)]
        shown = runner.invoke(app, command)
        assert shown.exit_code == 0, shown.output
        # Two SKUs in the default and the app segment, not only the candidate's default.
        assert (
            "4 SKU and segments priced, 2 would change at the next repricing (2 up, 0 down)"
            in shown.output
        )
        assert (
            "Segments the candidate no longer prices on their own, compared at the price "
            "their lookups would get (that of the segment after the arrow): "
            "channel:app → default." in shown.output
        )

        document = _json(runner.invoke(app, [*command, "--json"]).output)
        assert document["summary"]["evaluated"] == 4
        # Live: the app gets 5% off the list price (47.50); after the edit, the list price.
        assert [
            (c["sku"], c["segment"], c["answered_by"], c["current"], c["proposed"])
            for c in document["changes"]
        ] == [
            ("SKU-0", "channel:app", "", "47.50", "50.00"),
            ("SKU-1", "channel:app", "", "47.50", "50.00"),
        ]
        assert {c["rule_id"] for c in document["changes"]} == {"default"}
    finally:
        get_settings.cache_clear()


#: A markdown off the current price at every repricing, as a pricing team might write
#: "clear slow stock": each repricing starts from the last one's price.
COMPOUNDING = """
timezone: America/New_York
guardrails:
  max_change: "10%"
default:
  description: Keep the current price, 1% off it.
  owner: test@example.com
  strategy:
    keep_current: true
  adjustments:
    - id: markdown
      change: "-1%"
"""


@pytest.mark.anyio
async def test_a_rule_that_compounds_is_followed_to_its_floor_or_shown_unsettled(
    store: Store, tmp_path: Path
) -> None:
    await store.put_items([item("SKU-0", current_price=Decimal("50.00"))])
    floored = COMPOUNDING.replace('max_change: "10%"', 'max_change: "10%"\n  min_price: 5')
    with_floor = compile_rules(write_rules(tmp_path / "floor", floored))

    [change] = (await preview_catalogue(store, with_floor, FRIDAY_NOON)).changes

    # One step shows -1%; repricing after repricing (about 230 of them), it runs down to
    # the floor, 90% below.
    assert (change.proposed, change.change_percent) == (Decimal("49.50"), Decimal("-1.00"))
    assert (change.heading, change.heading_settles) == (Decimal("5.00"), True)
    assert change.heading_change_percent == Decimal("-90.00")
    assert change.held_short

    # Without a floor, down to one cent.
    without_floor = compile_rules(write_rules(tmp_path / "none", COMPOUNDING))
    [bottom] = (await preview_catalogue(store, without_floor, FRIDAY_NOON)).changes
    assert (bottom.heading, bottom.heading_settles) == (Decimal("0.01"), True)

    # A markup with no ceiling never settles.
    upward = compile_rules(write_rules(tmp_path / "up", COMPOUNDING.replace('"-1%"', '"+5%"')))
    preview = await preview_catalogue(store, upward, FRIDAY_NOON)
    [endless] = preview.changes
    assert not endless.heading_settles
    assert endless.heading is not None
    assert endless.heading > endless.proposed * Decimal("1.5")
    assert preview.summary.unsettled == 1


HAPPY_HOUR = PLAIN_RULES.replace(
    "default:\n", 'guardrails:\n  max_change: "5%"\n  cooldown: 1h\ndefault:\n', 1
) + (
    "  - id: happy-hour\n"
    "    description: Thirty percent off from five to seven.\n"
    "    owner: test@example.com\n"
    "    priority: 30\n"
    '    when: { hours: "17:00-19:00" }\n'
    '    strategy: { discount: "30%" }\n'
)


@pytest.mark.anyio
async def test_a_heading_under_a_window_says_until_when_and_an_override_hides_none(
    store: Store, tmp_path: Path
) -> None:
    await store.put_items([item("SKU-0", current_price=Decimal("50.00"))])
    candidate = compile_rules(write_rules(tmp_path / "happy", HAPPY_HOUR))
    at = datetime(2026, 11, 20, 22, 30, tzinfo=UTC)  # 17:30 in New York

    preview = await preview_catalogue(store, candidate, at, ["SKU-0"])

    # 30% off while the happy hour lasts, which a 5% step may never reach: the heading
    # says until when.
    default = next(change for change in preview.changes if change.segment == "")
    assert (default.proposed, default.heading) == (Decimal("47.50"), Decimal("35.00"))
    assert default.heading_until == datetime(2026, 11, 21, 0, 0, tzinfo=UTC)  # 19:00

    # An override in force ends: the heading is where the rules take the price after it
    # (the next step keeps the override's price).
    target = PLAIN_RULES.replace("list_price: true", "cost_plus: 200%").replace(
        "default:\n", 'guardrails:\n  max_change: "5%"\ndefault:\n', 1
    )
    await store.put_items([item("SKU-1", current_price=Decimal("50.00"), cost=Decimal("20.00"))])
    launch = Override(price=Decimal("50.00"), until=at + timedelta(hours=2), reason="launch")
    await store.set_override("SKU-1", launch)
    overridden = await preview_catalogue(
        store, compile_rules(write_rules(tmp_path / "target", target)), at, ["SKU-1"]
    )
    row = next(change for change in overridden.changes if change.segment == "")
    assert (row.proposed, row.heading) == (Decimal("50.00"), Decimal("60.00"))
    assert row.held_short


@pytest.mark.anyio
async def test_against_another_ruleset_headings_compare_with_its_own(
    store: Store, tmp_path: Path
) -> None:
    # Both rulesets step at most 10% at a time: their next steps look alike, only where
    # they head differs (30% off against 5% off in the app).
    paced = PLAIN_RULES.replace("default:\n", 'guardrails:\n  max_change: "10%"\ndefault:\n', 1)
    live = write_rules(tmp_path / "live", paced)
    await _seed(store, live, count=1)
    baseline = compile_rules(live)
    candidate = compile_rules(write_rules(tmp_path / "candidate", CANDIDATE))
    at = FRIDAY_NOON + timedelta(minutes=1)

    same = await preview_catalogue(store, baseline, at, baseline=baseline)
    assert same.changes == []
    preview = await preview_catalogue(store, candidate, at, baseline=baseline)

    [app_change] = preview.changes
    assert app_change.segment == "channel:app"
    assert (app_change.heading_from, app_change.heading) == (Decimal("47.50"), Decimal("35.00"))


@pytest.mark.anyio
async def test_a_rounding_ending_a_skus_currency_cannot_carry_is_named(
    store: Store, tmp_path: Path
) -> None:
    """Validation cannot know that a .99 ending will meet JPY items (the currency is the
    item's); the preview, which prices them, names the rule."""
    await store.put_items(
        [
            item("LAMP"),
            item("TEA-SET").model_copy(
                update={"currency": "JPY", "list_price": Decimal(1500), "current_price": None}
            ),
        ]
    )
    rounded = PLAIN_RULES.replace(
        "default:\n", 'guardrails:\n  rounding: {ending: ".99"}\ndefault:\n'
    )
    candidate = compile_rules(write_rules(tmp_path / "candidate", rounded))
    preview = await preview_catalogue(store, candidate, FRIDAY_NOON)
    assert preview.summary.endings_beyond_currency == [
        "app-discount: price ending .99, JPY",
        "default: price ending .99, JPY",
    ]
    usd_only = await preview_catalogue(store, candidate, FRIDAY_NOON, ["LAMP"])
    assert usd_only.summary.endings_beyond_currency == []
    whole_yen = compile_rules(write_rules(tmp_path / "nine", rounded.replace('".99"', '"9"')))
    assert (
        await preview_catalogue(store, whole_yen, FRIDAY_NOON)
    ).summary.endings_beyond_currency == []


@pytest.mark.anyio
async def test_an_amount_adjustment_moving_a_price_by_half_is_named(
    store: Store, tmp_path: Path
) -> None:
    """Validation cannot bound a list-price rule's prices; the preview sees them: -30 off
    a 50.00 lamp reads like a forgotten "%", -2 off it does not."""
    await store.put_items([item("LAMP"), item("VASE", "200.00")])
    adjusted = PLAIN_RULES.replace(
        "    list_price: true\n",
        "    list_price: true\n"
        "  adjustments:\n"
        "    - {id: promo, change: -30}\n"
        "    - {id: small, change: -2}\n",
        1,
    )
    candidate = compile_rules(write_rules(tmp_path / "candidate", adjusted))
    preview = await preview_catalogue(store, candidate, FRIDAY_NOON)
    # The largest move is named: the VASE's 15% is not one.
    assert preview.summary.amounts_like_percentages == [
        "default/promo: -30 USD would move LAMP from 50.00 by 60.00%"
    ]
    vase_only = await preview_catalogue(store, candidate, FRIDAY_NOON, ["VASE"])
    assert vase_only.summary.amounts_like_percentages == []


def test_the_cli_warns_of_amounts_and_endings_the_summary_names(
    clean_redis: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = write_rules(tmp_path / "live")
    adjusted = PLAIN_RULES.replace(
        "    list_price: true\n",
        "    list_price: true\n  adjustments:\n    - {id: promo, change: -30}\n",
        1,
    ).replace("default:\n", 'guardrails:\n  rounding: {ending: ".995"}\ndefault:\n')
    candidate = write_rules(tmp_path / "candidate", adjusted)
    _seed_for_the_cli(clean_redis, live, monkeypatch)
    at = (FRIDAY_NOON + timedelta(minutes=1)).isoformat()
    try:
        shown = CliRunner().invoke(app, ["preview", str(candidate), "--at", at, "--top", "0"])
        assert shown.exit_code == 0, shown.output
        assert (
            'an amount adjustment moved a price by half of it or more (a forgotten "%"?): '
            "default/promo: -30 USD would move SKU-0 from 50.00 by 60.00%"
        ) in shown.output
        assert (
            "a rounding ending needs more decimal places than the SKUs' currency has, so "
            "their prices are published unrounded: app-discount: price ending .995, USD; "
            "default: price ending .995, USD"
        ) in shown.output
    finally:
        get_settings.cache_clear()
