"""Schemathesis against the live OpenAPI schema: every operation, authenticated as admin.

The real app is served by uvicorn on 127.0.0.1 against the test Redis, with items,
published prices, listings, overrides, signals and elasticity estimates seeded, which the
hooks (``hooks.py``) put in generated paths so that successful responses are checked too.
``schemathesis run`` (its CLI, as CI runs it; its pytest plugin's lazy loader does not
work with pytest 9) reads the server's own ``/openapi.json``, so endpoints added later
are covered without touching this file. No operation is excluded: none shuts anything
down, and the admin ones (freeze, reprice, elasticity fit) only change the test Redis.

Checks: no 5xx, and every response's status code, content type and body as declared.
Generation is derandomized (``--generation-deterministic``, which also means no example
database) and bounded by ``MAX_EXAMPLES`` per operation; one worker keeps the order
reproducible. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from pricing_service.api import create_app
from pricing_service.api.auth import hash_key
from pricing_service.api.problems import PROBLEM_CONTENT_TYPE
from pricing_service.settings import Settings
from pricing_service.store.store import Store, StoredElasticity
from tests.api.conftest import RULES as API_RULES
from tests.api.helpers import item, publish
from tests.contract.hooks import SEEDED_VALUES_VARIABLE, Seeded
from tests.servers import ThreadedServers

ADMIN_KEY = "contract-admin-secret"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
#: Cases per operation in the fuzzing phase; the examples and coverage phases add their
#: own, deterministic, ones (boundary values and invalid inputs).
MAX_EXAMPLES = 30
#: SKUs with published prices (the first two) and without; those the deletes remove.
SEEDED_SKUS = ("SKU-1", "SKU-2", "SKU-3")
DELETED_ITEM, DELETED_OVERRIDE, DELETED_LISTING = "GONE-1", "GONE-2", "GONE-3"
RETIRED = "RETIRED-1"
UNPRICED_SKUS = ("SKU-3", DELETED_ITEM, DELETED_OVERRIDE, DELETED_LISTING)
COMPETITOR = "megamart"
CHECKS = (
    "not_a_server_error",
    "response_schema_conformance",
    "status_code_conformance",
    "content_type_conformance",
)
ROOT = Path(__file__).resolve().parents[2]

#: The API tests' rules, and a competitor for the listings.
RULES = f"""{API_RULES}competitors:
  {COMPETITOR}:
    name: MegaMart
    domains: [megamart.example]
"""


async def _seed_elasticity(redis_url: str, sku: str, now: datetime) -> None:
    store = Store.from_url(redis_url, retention=timedelta(days=35))
    try:
        estimate = StoredElasticity(
            elasticity=-1.5, standard_error=0.2, observations=40, fitted_at=now
        )
        await store.put_elasticities({sku: estimate}, changed=[])
    finally:
        await store.close()


def _seed(client: httpx.Client, redis_url: str, rules_dir: Path) -> Seeded:
    """Items, prices, signals, overrides, listings and an elasticity estimate; returns
    path parameter values that find them, by operation (``*`` for the others)."""
    now = datetime.now(UTC)
    # The elasticity fit (an operation under test) drops the estimates of catalogued items
    # without sales enough; a retired item's estimate stays until retention.
    for sku in ("SKU-1", RETIRED):
        asyncio.run(_seed_elasticity(redis_url, sku, now))
    decision_ids = []
    for sku in SEEDED_SKUS[:2]:
        publish(redis_url, rules_dir, item(sku), now - timedelta(minutes=5))
        page = client.get(f"/v1/prices/{sku}/history", headers=AUTH).json()
        decision_ids += [d["decision_id"] for r in page["records"] for d in r["decisions"]]
    facts = {"currency": "USD", "list_price": "20.00", "cost": "8.00", "inventory": 5}
    listing = {"url": "https://megamart.example/p/1", "frequency": "6h"}
    override = {"price": "39.99", "until": (now + timedelta(days=1)).isoformat(), "reason": "t"}
    observation = {
        "sku": "SKU-1",
        "competitor": COMPETITOR,
        "price": "48.00",
        "currency": "USD",
        "observed_at": (now - timedelta(minutes=1)).isoformat(),
    }
    sale = {"sku": "SKU-1", "quantity": 2, "unit_price": "45.00", "ts": now.isoformat()}
    calls = [
        *(client.put(f"/v1/items/{sku}", json=facts, headers=AUTH) for sku in UNPRICED_SKUS),
        client.put(f"/v1/listings/SKU-1/{COMPETITOR}", json=listing, headers=AUTH),
        client.put(f"/v1/listings/{DELETED_LISTING}/{COMPETITOR}", json=listing, headers=AUTH),
        client.put("/v1/overrides/SKU-2", json=override, headers=AUTH),
        client.put(f"/v1/overrides/{DELETED_OVERRIDE}", json=override, headers=AUTH),
        client.post("/v1/sales", json=[sale], headers=AUTH),
        client.post("/v1/observations", json=[observation], headers=AUTH),
    ]
    for response in calls:
        assert response.status_code in (200, 201), response.text
    assert decision_ids
    return {
        "*": {"sku": list(SEEDED_SKUS), "decision_id": decision_ids, "competitor": [COMPETITOR]},
        # Deletes get SKUs of their own, so that what the other operations read stays.
        "GET /v1/items/{sku}/elasticity": {"sku": ["SKU-1", RETIRED]},
        "DELETE /v1/items/{sku}": {"sku": [DELETED_ITEM]},
        "DELETE /v1/overrides/{sku}": {"sku": [DELETED_OVERRIDE]},
        "DELETE /v1/listings/{sku}/{competitor}": {
            "sku": [DELETED_LISTING],
            "competitor": [COMPETITOR],
        },
    }


@pytest.fixture
def live_api(clean_redis: str, tmp_path: Path) -> Iterator[tuple[str, Seeded]]:
    """The served app's base URL, and the seeded path parameter values."""
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "rules.yaml").write_text(RULES)
    settings = Settings(
        redis_url=clean_redis,
        rules_dir=rules_dir,
        data_dir=tmp_path / "data",
        api_keys=f"contract:admin:{hash_key(ADMIN_KEY)}",
        access_log=False,
    )
    servers = ThreadedServers()
    try:
        client = servers.start(create_app(settings))
        yield str(client.base_url), _seed(client, clean_redis, rules_dir)
    finally:
        servers.stop_all()


def test_live_schema_holds(live_api: tuple[str, Seeded], tmp_path: Path) -> None:
    base_url, seeded = live_api
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--no-color",
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--header",
        f"Authorization: Bearer {ADMIN_KEY}",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--generation-deterministic",
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--suppress-health-check",
        "all",
        "--report-dir",
        str(tmp_path / "report"),
    ]
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SCHEMATHESIS_HOOKS": "tests.contract.hooks",
        SEEDED_VALUES_VARIABLE: json.dumps(seeded),
        "NO_PROXY": "127.0.0.1",
        "no_proxy": "127.0.0.1",
    }
    run = subprocess.run(
        command, env=environment, cwd=ROOT, capture_output=True, text=True, timeout=270
    )
    print(run.stdout)  # the report, with its warnings, for `pytest -rP`
    assert run.returncode == 0, f"schemathesis found problems:\n{run.stdout}\n{run.stderr}"


def test_error_responses_are_declared_as_problems(tmp_path: Path) -> None:
    """Fast, without a server: every declared error is a problem document, FastAPI's own
    validation error schema is gone, and authenticated operations declare 401."""
    keys = f"contract:admin:{hash_key(ADMIN_KEY)}"
    settings = Settings(redis_url="redis://127.0.0.1:1/0", rules_dir=tmp_path, api_keys=keys)
    document = create_app(settings).openapi()
    problem = {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, path_item in document["paths"].items():
        for method, operation in path_item.items():
            where = f"{method.upper()} {path}"
            responses = operation["responses"]
            for status, response in responses.items():
                if status[0] in "45":
                    assert response.get("content") == problem, (where, status)
            if operation.get("security"):
                assert "401" in responses, where
            if "requestBody" in operation:
                assert {"400", "413", "422"} <= responses.keys(), where


def test_money_in_requests_is_never_a_json_number(tmp_path: Path) -> None:
    """The document promises what the validators take: decimal strings or integers."""
    settings = Settings(redis_url="redis://127.0.0.1:1/0", rules_dir=tmp_path)
    schemas = create_app(settings).openapi()["components"]["schemas"]
    money = {"price", "cost", "list_price", "map_price", "min_price", "max_price"}
    money |= {"current_price", "shipping", "unit_price"}
    checked = 0
    for name in ("ItemIn", "SaleIn", "ObservationIn", "OverrideIn"):
        for field, schema in schemas[name]["properties"].items():
            if field in money:
                checked += 1
                assert '"number"' not in json.dumps(schema), (name, field)
                assert '"string"' in json.dumps(schema), (name, field)
    assert checked == 10
