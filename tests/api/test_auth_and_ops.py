"""API keys and scopes, body limits, readiness and metrics."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from pricing_service.api.auth import ApiKeyConfigError, hash_key, parse_key_entry
from tests.api.conftest import ADMIN_KEY, READ_KEY, WRITE_KEY, ServeApp, auth

ITEM = {"currency": "USD", "list_price": "10.00"}


def test_a_missing_or_unknown_key_is_401_with_a_bearer_challenge(api: httpx.Client) -> None:
    # RFC 6750: no error code when no key was sent; which error when one was.
    for headers, challenge in (
        ({}, 'Bearer realm="pricing"'),
        (auth("wrong"), 'Bearer realm="pricing", error="invalid_token"'),
        ({"Authorization": "Basic abc"}, 'Bearer realm="pricing", error="invalid_request"'),
    ):
        response = api.get("/v1/items/SKU-1", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == challenge
        assert response.headers["content-type"] == "application/problem+json"


def test_scopes_are_ordered_read_write_admin(api: httpx.Client) -> None:
    assert api.put("/v1/items/SKU-1", json=ITEM, headers=auth(READ_KEY)).status_code == 403
    assert api.put("/v1/items/SKU-1", json=ITEM, headers=auth(WRITE_KEY)).status_code == 201
    assert api.put("/v1/items/SKU-1", json=ITEM, headers=auth(ADMIN_KEY)).status_code == 200
    assert api.get("/v1/items/SKU-1", headers=auth(READ_KEY)).status_code == 200
    override = {"price": "9.00", "until": "2099-01-01T00:00:00Z", "reason": "test"}
    assert api.put("/v1/overrides/SKU-1", json=override, headers=auth(WRITE_KEY)).status_code == 403


def test_public_reads_open_price_lookups_only(serve_app: ServeApp) -> None:
    closed = serve_app()
    assert closed.get("/v1/prices/SKU-1").status_code == 401
    public = serve_app(public_reads=True)
    assert public.get("/v1/prices/SKU-1").status_code == 404
    assert public.get("/v1/items/SKU-1").status_code == 401
    assert public.put("/v1/items/SKU-1", json=ITEM).status_code == 401


def test_keys_from_a_file(serve_app: ServeApp, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"# comment\nfilekey:read:{hash_key('from-file')}\n")
    api = serve_app(api_keys=None, api_keys_file=keys)
    assert api.get("/v1/items/X", headers=auth("from-file")).status_code == 404


@pytest.mark.parametrize(
    "entry", ["nocolons", "name:root:" + "0" * 64, "name:read:xyz", ":read:" + "0" * 64]
)
def test_bad_key_entries_are_refused(entry: str) -> None:
    with pytest.raises(ApiKeyConfigError):
        parse_key_entry(entry)


def test_oversized_bodies_are_413(serve_app: ServeApp) -> None:
    api = serve_app(max_body_bytes=2048)
    response = api.put(
        "/v1/items/SKU-1", content=b"[" + b" " * 4096 + b"]", headers=auth(WRITE_KEY)
    )
    assert response.status_code == 413
    assert response.json()["status"] == 413

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b" " * 1024

    streamed = api.post(
        "/v1/items/bulk",
        content=chunks(),
        headers={**auth(WRITE_KEY), "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413


def test_health_readiness_and_metrics(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    api.get("/v1/prices/SKU-1", headers=auth(READ_KEY))
    metrics = api.get("/metrics")
    assert metrics.status_code == 200
    text = metrics.text
    assert "pricing_http_request_duration_seconds_bucket" in text
    assert 'route="/v1/prices/{sku}"' in text
    assert "SKU-1" not in text


def test_not_ready_without_a_ruleset(serve_app: ServeApp, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "rules.yaml").write_text("timezone: [\n")
    api = serve_app(rules_dir=broken)
    response = api.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "rules.yaml" in response.json()["detail"]


def test_not_ready_without_redis(serve_app: ServeApp) -> None:
    api = serve_app(redis_url="redis://127.0.0.1:1/0", redis_connect_timeout=0.2)
    response = api.get("/readyz")
    assert response.status_code == 503
    lookup = api.get("/v1/prices/SKU-1", headers=auth(READ_KEY))
    assert lookup.status_code == 503
    assert lookup.headers["retry-after"] == "1"


def test_unknown_routes_are_problems(api: httpx.Client) -> None:
    response = api.get("/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
