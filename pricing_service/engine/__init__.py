"""The pricing engine: pure functions from inputs to explained decisions.

No Redis, no HTTP: the service feeds it inputs and stores what it returns.
"""

from pricing_service.engine.batch import (
    MISSING,
    BatchDecisions,
    BatchInputs,
    decide_batch,
    encode_batch,
)
from pricing_service.engine.compiled import GUARDRAIL_NAMES, CompiledRuleset
from pricing_service.engine.decision import Decision, InputUsed, Step
from pricing_service.engine.inputs import (
    DEFAULT_SEGMENT,
    CompetitorObservation,
    DemandStats,
    ElasticityEstimate,
    ItemFacts,
    PriceChange,
    PricingInputs,
    Segment,
)
from pricing_service.engine.schedule import schedule
from pricing_service.engine.single import decide

__all__ = [
    "DEFAULT_SEGMENT",
    "GUARDRAIL_NAMES",
    "MISSING",
    "BatchDecisions",
    "BatchInputs",
    "CompetitorObservation",
    "CompiledRuleset",
    "Decision",
    "DemandStats",
    "ElasticityEstimate",
    "InputUsed",
    "ItemFacts",
    "PriceChange",
    "PricingInputs",
    "Segment",
    "Step",
    "decide",
    "decide_batch",
    "encode_batch",
    "schedule",
]
