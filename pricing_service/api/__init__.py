"""The REST API (FastAPI)."""

from pricing_service.api.app import create_app

__all__ = ["create_app"]
