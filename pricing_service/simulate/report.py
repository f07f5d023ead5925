"""What a simulation shows an analyst: totals per policy, the goals, and charts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pricing_service.money import from_minor
from pricing_service.simulate.market import Floats
from pricing_service.simulate.runner import BEAT_LOWEST, LIST_PRICE, ORACLE, RULES, Simulation

#: An estimate is "near the truth" within this relative error.
ESTIMATE_TOLERANCE = 0.10
#: Two-sided 95% normal quantile.
Z_95 = 1.96
#: The earlier, cruder reading of "varied enough": the standard deviation of the item's
#: log price over the run is at least this (about ±5%), however noisy its sales.
MIN_LOG_PRICE_SPREAD = 0.05
IDENTIFIED = (
    "prices varied enough to identify the elasticity to ±10%: the item's own unpooled "
    "95% interval (±1.96·own standard error, from its price variation and its own "
    "residual noise) is no wider than ±10% of the true elasticity"
)
SPREAD = f"std of log price over the run >= {MIN_LOG_PRICE_SPREAD}"
LABELS = {
    RULES: "rules (engine)",
    ORACLE: "oracle (true elasticities)",
    LIST_PRICE: "static list price",
    BEAT_LOWEST: "beat lowest by 1%",
}
COLORS = {RULES: "tab:blue", ORACLE: "black", LIST_PRICE: "tab:purple", BEAT_LOWEST: "tab:orange"}


def summarise(simulation: Simulation) -> dict[str, Any]:
    """JSON-ready totals and goals; money as decimal strings in the scenario currency."""
    market = simulation.market
    currency = market.currency
    oracle_profit = int(simulation.runs[ORACLE].profit(market).sum())
    policies: dict[str, Any] = {}
    for name, run in simulation.runs.items():
        profit = int(run.profit(market).sum())
        policies[name] = {
            "label": LABELS[name],
            "profit": str(from_minor(profit, currency)),
            "revenue": str(from_minor(int(run.revenue().sum()), currency)),
            "units": int(run.units.sum()),
            "stockout_item_days": int(np.count_nonzero(run.lost_units)),
            "lost_units": int(run.lost_units.sum()),
            "profit_share_of_oracle": _share(profit, oracle_profit),
            "loop_holds": run.loop_holds,
        }
    rules = simulation.runs[RULES]
    rules_profit = int(rules.profit(market).sum())
    baseline = int(simulation.runs[BEAT_LOWEST].profit(market).sum())
    listed = int(simulation.runs[LIST_PRICE].profit(market).sum())
    return {
        "scenario": simulation.scenario.name,
        "currency": currency,
        "days": simulation.days,
        "seed": simulation.seed,
        "items": len(market),
        "start": simulation.start.date().isoformat(),
        "policies": policies,
        "goals": {
            "profit_share_of_oracle": _share(rules_profit, oracle_profit),
            # Gains are shares minus one: +0.086 is 8.6% more profit.
            "profit_gain_over_beat_lowest": _gain(rules_profit, baseline),
            "profit_gain_over_list_price": _gain(rules_profit, listed),
            "weekly_profit_share_of_oracle": weekly_profit_share_of_oracle(simulation),
            "elasticity": elasticity_accuracy(simulation),
        },
    }


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _gain(profit: int, compared: int) -> float | None:
    return round(profit / compared - 1, 4) if compared else None


def weekly_profit_share_of_oracle(simulation: Simulation) -> list[float | None]:
    """The rules' profit as a share of the oracle's, week by week (the last week may be
    short): where the run loses its profit, learning or later."""
    market = simulation.market
    rules = simulation.runs[RULES].profit(market).sum(axis=1)
    oracle = simulation.runs[ORACLE].profit(market).sum(axis=1)
    shares: list[float | None] = []
    for start in range(0, simulation.days, 7):
        best = int(oracle[start : start + 7].sum())
        shares.append(_share(int(rules[start : start + 7].sum()), best))
    return shares


def elasticity_accuracy(simulation: Simulation) -> dict[str, Any]:
    """How close the last fit is to the truth, for the items whose prices varied enough.

    "Varied enough" is read as identification, a statement about the price variation the
    item had and not about its estimate's error: the item's own data (its log-price
    variation ``Sxx`` and its residual noise ``s``, no pooling) pin its elasticity to
    ±10% at 95% confidence, ``1.96·s/√Sxx <= 0.10·|e|``. Under the (weighted)
    least-squares model the residual variance is independent of the slope's error, so
    this does not select the items that happen to be accurate. The cruder spread
    threshold is reported too.
    """
    market, run = simulation.market, simulation.runs[RULES]
    if not run.fits:
        return {}
    _, fit = run.fits[-1]
    truth = np.abs(market.elasticity)
    error = np.abs(fit.elasticity / market.elasticity - 1.0)
    near = np.isfinite(error) & (error <= ESTIMATE_TOLERANCE)
    identified = identified_items(fit.raw_standard_error, truth)
    varied = log_price_spread(run.price) >= MIN_LOG_PRICE_SPREAD

    def subset(chosen: npt.NDArray[np.bool_], definition: str) -> dict[str, Any]:
        return {
            "definition": definition,
            "items": int(chosen.sum()),
            "share_of_items": round(float(chosen.mean()), 4),
            "share_within_tolerance": round(float(near[chosen].mean()), 4)
            if chosen.any()
            else None,
        }

    return {
        "tolerance": ESTIMATE_TOLERANCE,
        "identified": subset(identified, IDENTIFIED),
        "spread": subset(varied, SPREAD),
        "share_within_tolerance_of_all": round(float(near.mean()), 4),
        "median_relative_error": _median(error),
        "median_standard_error": _median(fit.standard_error),
        "median_own_standard_error": _median(fit.raw_standard_error),
    }


def _median(values: Floats) -> float | None:
    """The median of the values fitted; None when none was (prices that never moved), as
    JSON has no NaN."""
    fitted = values[~np.isnan(values)]
    return round(float(np.median(fitted)), 4) if fitted.size else None


def identified_items(own_standard_error: Floats, truth: Floats) -> npt.NDArray[np.bool_]:
    """Items whose own data identify the elasticity to ±10% at 95% confidence."""
    with np.errstate(invalid="ignore"):
        return np.asarray(
            np.isfinite(own_standard_error)
            & (Z_95 * own_standard_error <= ESTIMATE_TOLERANCE * truth),
            np.bool_,
        )


def log_price_spread(price: np.ndarray[Any, Any]) -> Floats:
    return np.asarray(np.log(price.astype(np.float64)).std(axis=0), np.float64)


def write_report(simulation: Simulation, out: Path) -> dict[str, Any]:
    """``summary.json`` and the charts in ``out``; returns the summary."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(simulation)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    _charts(simulation, out)
    return summary


def _charts(simulation: Simulation, out: Path) -> None:
    # Imported here: only a run that writes charts pays for matplotlib.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    market = simulation.market
    scale = market.scale
    days = np.arange(simulation.days)
    wanted = simulation.scenario.chart_skus or market.skus[:3]
    rows = [market.skus.index(sku) for sku in wanted if sku in market.skus]
    rules, oracle = simulation.runs[RULES], simulation.runs[ORACLE]

    figure, axes = plt.subplots(len(rows), 1, figsize=(11, 3.6 * len(rows)), squeeze=False)
    for axis, row in zip(axes[:, 0], rows, strict=True):
        for name, style in ((RULES, "-"), (ORACLE, "--"), (BEAT_LOWEST, "-")):
            prices = simulation.runs[name].price[:, row] / scale
            axis.plot(days, prices, style, label=LABELS[name], color=COLORS[name])
        axis.plot(
            days,
            rules.lowest_competitor[:, row] / scale,
            ":",
            label="lowest competitor (rules run)",
            color="tab:red",
        )
        axis.axhline(market.cost[row] / scale, color="grey", linewidth=0.8, label="cost")
        axis.set_ylabel(f"price ({market.currency})")
        axis.set_title(
            f"{market.skus[row]} ({market.categories[market.category[row]]}), "
            f"true elasticity {market.elasticity[row]:.2f}"
        )
        demand = axis.twinx()
        demand.bar(days, rules.units[:, row], alpha=0.2, color="tab:green", label="units sold")
        demand.plot(days, rules.expected_units[:, row], color="tab:green", linewidth=0.8)
        demand.set_ylabel("units/day (rules run)")
        lines, names = axis.get_legend_handles_labels()
        more, more_names = demand.get_legend_handles_labels()
        axis.legend(lines + more, names + more_names, loc="upper left", fontsize=7, ncol=3)
    axes[-1, 0].set_xlabel(f"day (from {simulation.start.date().isoformat()})")
    figure.tight_layout()
    figure.savefig(out / "items.png", dpi=110)
    plt.close(figure)

    figure, (cumulative, weekly) = plt.subplots(2, 1, figsize=(11, 8))
    for name, run in simulation.runs.items():
        daily = run.profit(market).sum(axis=1)
        cumulative.plot(days, daily.cumsum() / scale, label=LABELS[name], color=COLORS[name])
    cumulative.set_ylabel(f"cumulative profit ({market.currency})")
    cumulative.set_title("Cumulative profit by policy")
    cumulative.legend(fontsize=8)
    oracle_daily = oracle.profit(market).sum(axis=1)
    for name, run in simulation.runs.items():
        if name == ORACLE:
            continue
        share = run.profit(market).sum(axis=1).cumsum() / np.maximum(oracle_daily.cumsum(), 1)
        weekly.plot(days, 100 * share, label=LABELS[name], color=COLORS[name])
    weekly.axhline(95, color="grey", linestyle="--", linewidth=0.8, label="95% goal")
    weekly.set_ylabel("cumulative profit, % of oracle")
    weekly.set_xlabel(f"day (from {simulation.start.date().isoformat()})")
    weekly.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "profit.png", dpi=110)
    plt.close(figure)

    if rules.fits:
        _, fit = rules.fits[-1]
        figure, axis = plt.subplots(figsize=(6.5, 6))
        varied = identified_items(fit.raw_standard_error, np.abs(market.elasticity))
        axis.scatter(
            market.elasticity[~varied], fit.elasticity[~varied], s=10, label="not identified"
        )
        axis.scatter(
            market.elasticity[varied],
            fit.elasticity[varied],
            s=10,
            label="identified to ±10% by its own prices",
        )
        low, high = float(market.elasticity.min()) - 0.3, float(market.elasticity.max()) + 0.3
        line = np.array([low, high])
        axis.plot(line, line, color="black", linewidth=0.8, label="truth")
        axis.fill_between(line, line * 0.9, line * 1.1, color="grey", alpha=0.2, label="±10%")
        axis.set_xlabel("true elasticity")
        axis.set_ylabel(f"estimate after {simulation.days} days")
        axis.set_title("Fitted elasticities against the truth")
        axis.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(out / "elasticity.png", dpi=110)
        plt.close(figure)
