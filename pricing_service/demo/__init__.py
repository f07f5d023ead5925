"""The demo catalogue: a dozen items that exercise every kind of rule in ``rules/``."""

from pricing_service.demo.catalogue import demo_catalogue

__all__ = ["demo_catalogue"]
