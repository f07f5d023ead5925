"""Price elasticity: an item's estimate, and a fit on demand (admin)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from pricing_service.api.deps import Admin, Reader, StoreDep
from pricing_service.api.problems import FORBIDDEN, UNAUTHORIZED, UNAVAILABLE, not_found
from pricing_service.catalogue import SKU_PATTERN
from pricing_service.elasticity.refit import refit

router = APIRouter(tags=["elasticity"], responses={**UNAUTHORIZED, **UNAVAILABLE})

Sku = Annotated[str, Path(pattern=SKU_PATTERN, description="The item's SKU.")]


class ElasticityOut(BaseModel):
    """Statistics, not money: plain JSON numbers."""

    sku: str
    elasticity: float = Field(description="Pooled estimate: % change in units per % in price.")
    standard_error: float
    observations: int = Field(description="Item-days with sales the fit used.")
    fitted_at: datetime
    category_elasticity: float | None = Field(
        description="The pooled mean of the item's category, which sparse items lean on."
    )
    raw_elasticity: float | None = Field(
        description="The item's own estimate before pooling (null if it has none)."
    )


class FitOut(BaseModel):
    fitted_at: datetime
    items: int
    estimated: int
    changed: int = Field(description="SKUs whose estimate changed, queued for repricing.")
    observations: int
    seconds: float


@router.get("/v1/items/{sku}/elasticity", responses={404: {"description": "No estimate yet."}})
async def get_elasticity(sku: Sku, _: Reader, store: StoreDep) -> ElasticityOut:
    """The item's latest elasticity estimate."""
    stored = await store.get_elasticity(sku)
    if stored is None:
        raise not_found("elasticity", f"no elasticity estimate for {sku!r}")
    return ElasticityOut(sku=sku, **stored.model_dump())


@router.post("/v1/admin/elasticity/fit", responses=FORBIDDEN)
async def fit_elasticities(_: Admin, store: StoreDep) -> FitOut:
    """Fit every SKU's elasticity now (admin); the numpy work runs off the event loop."""
    return FitOut(**asdict(await refit(store)))
