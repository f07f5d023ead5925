"""The API test fixtures (a real server on the test Redis) for this folder's HTTP tests."""

from tests.api.conftest import api, rules_dir, serve_app

__all__ = ["api", "rules_dir", "serve_app"]
