"""Demo items with competitor offers, demand and elasticity, timed relative to ``now``
so that the offers are fresh whenever the demo runs."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pricing_service.engine.inputs import PricingInputs


def _offer(
    competitor: str, price: str, now: datetime, hours_ago: float, **extra: Any
) -> dict[str, Any]:
    return {
        "competitor": competitor,
        "price": Decimal(price),
        "currency": "USD",
        "observed_at": now - timedelta(hours=hours_ago),
        **extra,
    }


def demo_catalogue(now: datetime) -> list[PricingInputs]:
    """The demo items as of ``now`` (an aware datetime)."""
    changed = now - timedelta(days=3)
    items: list[dict[str, Any]] = [
        {
            "item": {
                "sku": "TV-55-OLED",
                "currency": "USD",
                "cost": "780.00",
                "list_price": "1299.00",
                "map_price": "999.00",
                "category": "electronics",
                "brand": "Vision",
                "inventory": 40,
                "current_price": "1149.99",
                "last_changed_at": changed,
            },
            "observations": [
                _offer("megamart", "1099.00", now, 2, shipping=Decimal("0.00")),
                _offer("shopright", "1079.00", now, 5, shipping=Decimal("15.00")),
                _offer("bargainhub", "949.00", now, 1, in_stock=False, shipping=Decimal("0.00")),
                _offer("our_outlet", "899.00", now, 1, shipping=Decimal("0.00")),
            ],
            "demand": {"velocity_7d": 6.0, "velocity_28d": 3.5, "days_of_supply": 9.0},
        },
        {
            "item": {
                "sku": "HEADPHONES-NC",
                "currency": "USD",
                "cost": "120.00",
                "list_price": "249.00",
                "category": "electronics",
                "brand": "Sonic",
                "inventory": 300,
                "current_price": "229.99",
                "last_changed_at": changed,
            },
            "observations": [_offer("megamart", "219.00", now, 30, shipping=Decimal("0.00"))],
        },
        {
            "item": {
                "sku": "FRIDGE-DD-600",
                "currency": "USD",
                "cost": "650.00",
                "list_price": "1099.00",
                "category": "appliances",
                "brand": "Polar",
                "inventory": 12,
                "current_price": "999.99",
                "last_changed_at": changed,
            },
            "observations": [_offer("megamart", "979.00", now, 3, shipping=Decimal("49.00"))],
        },
        {
            "item": {
                "sku": "BOOK-PY-101",
                "currency": "USD",
                "cost": "11.00",
                "list_price": "39.99",
                "category": "books",
                "brand": "Tomes",
                "inventory": 80,
                "current_price": "34.95",
                "last_changed_at": changed,
            },
            "observations": [
                _offer("megamart", "31.50", now, 10),
                _offer("shopright", "33.00", now, 20),
                _offer("bargainhub", "29.99", now, 40),
            ],
        },
        {
            "item": {
                "sku": "HOSE-30M",
                "currency": "USD",
                "cost": "14.00",
                "list_price": "39.99",
                "category": "garden",
                "brand": "Greenly",
                "inventory": 150,
                "current_price": "39.99",
                "last_changed_at": changed,
            },
        },
        {
            "item": {
                "sku": "CHIPS-SEA-SALT",
                "currency": "USD",
                "cost": "1.10",
                "list_price": "3.49",
                "category": "grocery",
                "brand": "Crunch",
                "tags": ["snack"],
                "inventory": 900,
                "current_price": "3.49",
                "last_changed_at": changed,
            },
        },
        {
            "item": {
                "sku": "JACKET-2025",
                "currency": "USD",
                "cost": "40.00",
                "list_price": "129.00",
                "category": "apparel",
                "brand": "North",
                "tags": ["clearance"],
                "inventory": 500,
                "current_price": "129.00",
                "last_changed_at": changed,
            },
            "demand": {"velocity_7d": 2.0, "velocity_28d": 2.5, "days_of_supply": 200.0},
        },
        {
            "item": {
                "sku": "LAMP-LUMEN-X",
                "currency": "USD",
                "cost": "30.00",
                "list_price": "99.00",
                "category": "home",
                "brand": "Lumen",
                "inventory": 70,
                "current_price": "79.99",
                "last_changed_at": changed,
            },
            "elasticity": {
                "elasticity": -2.4,
                "standard_error": 0.21,
                "observations": 180,
                "fitted_at": now - timedelta(hours=6),
            },
        },
        {
            "item": {
                "sku": "MUG-PLAIN",
                "currency": "USD",
                "cost": "2.00",
                "list_price": "9.99",
                "category": "home",
                "brand": "Basic",
                "inventory": 1000,
                "current_price": "8.99",
                "last_changed_at": changed,
            },
        },
        {
            "item": {
                "sku": "GIFT-CARD-NO-COST",
                "currency": "USD",
                "category": "misc",
                "current_price": "25.00",
                "last_changed_at": changed,
            },
        },
    ]
    return [PricingInputs.model_validate(entry) for entry in items]
