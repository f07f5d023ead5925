"""Rule files, items and workers for the repricer tests."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis

from pricing_service.engine.compiled import CompiledRuleset
from pricing_service.engine.inputs import ItemFacts
from pricing_service.repricer.worker import Repricer, read_ruleset
from pricing_service.store import keys
from pricing_service.store.store import Store

PLAIN_RULES = """
timezone: America/New_York
horizon: 2d
competitors:
  rival: { name: Rival }
segments:
  channel: [web, app]
default:
  description: List price.
  owner: test@example.com
  strategy:
    list_price: true
rules:
  - id: app-discount
    description: Five percent off in the app.
    owner: test@example.com
    priority: 20
    match:
      segment: { channel: app }
    strategy:
      discount: "5%"
"""

WEEKEND_RULES = """
timezone: America/New_York
horizon: 3d
competitors:
  rival: { name: Rival }
default:
  description: List price.
  owner: test@example.com
  strategy:
    list_price: true
rules:
  - id: weekend
    description: Twenty percent off at weekends.
    owner: test@example.com
    priority: 10
    when:
      days: [sat, sun]
    strategy:
      discount: "20%"
  - id: beat-rival
    description: Beat the rival by 1% on gadgets.
    owner: test@example.com
    priority: 5
    match:
      categories: [gadgets]
    strategy:
      competitor:
        reference: lowest
        action: beat
        by: "1%"
        max_age: 12h
    fallback:
      - list_price: true
"""


def write_rules(folder: Path, text: str = PLAIN_RULES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rules.yaml").write_text(text)
    return folder


def compile_rules(folder: Path) -> CompiledRuleset:
    loaded, diagnostics = read_ruleset(folder)
    assert loaded is not None, diagnostics
    return loaded.compiled


def item(sku: str, list_price: str = "50.00", **facts: Any) -> ItemFacts:
    return ItemFacts(sku=sku, currency="USD", list_price=Decimal(list_price), **facts)


def worker(store: Store, rules_dir: Path, consumer: str = "r1", **settings: Any) -> Repricer:
    fast = {
        "claim_idle_seconds": 60.0,
        "block_seconds": 0.02,
        "tick_seconds": 0.02,
        "rules_poll_seconds": 0.02,
        **settings,
    }
    return Repricer(store, rules_dir=rules_dir, consumer=consumer, **fast)


def store_item_with_unknown_field(redis_url: str, sku: str) -> None:
    """Rewrite the stored item as a script or an older version might, with a field this
    version does not know: it no longer validates."""
    client = redis.Redis.from_url(redis_url)
    try:
        stored = json.loads(client.get(keys.item(sku)) or b"{}")
        client.set(keys.item(sku), json.dumps({**stored, "colour": "red"}))
    finally:
        client.close()
