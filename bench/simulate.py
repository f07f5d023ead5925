"""Simulator benchmark: 1,000 items x 56 days of `pricing simulate`, against a floor,
and the issue-7 goals on several random markets.

The figure is the wall time of the four policy runs (rules with nightly elasticity
refits, oracle, static list price, beat the lowest by 1%) on the constant-elasticity
example scenario scaled to --items items, for the first seed. The floor, measured in the
same run, is the engine alone: the same number of decide_batch calls on one day's
columns, so the ratio says what the market, the fits and the bookkeeping add. Charts are
not timed. Then, for every seed (a different random market each), the goals: profit
against the oracle (overall and week by week), against "beat the lowest by 1%" and the
list price, and the elasticity estimates against the truth.

    .venv/bin/python bench/simulate.py [--items 1000] [--days 56] [--repeat 3] [--seeds 1,2,3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from pricing_service.rules.loader import load_ruleset
from pricing_service.simulate.market import build_market
from pricing_service.simulate.report import IDENTIFIED, MIN_LOG_PRICE_SPREAD, SPREAD, summarise
from pricing_service.simulate.runner import EnginePricer, _Day, simulate, with_competitors
from pricing_service.simulate.scenario import load_scenario, rules_path

SCENARIO = Path(__file__).parents[1] / "examples" / "scenarios" / "constant-elasticity.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--days", type=int, default=56)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seeds", default="1,2,3", help="Comma-separated; the first is timed.")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    base = load_scenario(SCENARIO)
    assert base.generate is not None
    scenario = base.model_copy(
        update={"generate": base.generate.model_copy(update={"count": args.items})}
    )
    rules = load_ruleset(rules_path(SCENARIO, base))
    print(f"python {platform.python_version()}, numpy {np.__version__}, cpus {os.cpu_count()}")
    print(f"load average at start: {os.getloadavg()[0]:.2f} (1 min)")
    print(f"scenario {SCENARIO.name} with {args.items} items, {args.days} days, seeds {seeds}")

    runs, floors = [], []
    for _ in range(args.repeat):
        market = build_market(scenario, seeds[0])
        started = time.perf_counter()
        simulation = simulate(scenario, rules, market, args.days, seeds[0])
        runs.append(time.perf_counter() - started)

        pricer = EnginePricer(with_competitors(rules, scenario), market, scenario)
        day = _Day(
            0,
            simulation.start,
            market.list_price,
            np.array([market.list_price]),
            np.full(len(market), np.inf),
            np.zeros((0, len(market)), np.int64),
        )
        started = time.perf_counter()
        for _ in range(2 * args.days):  # two engine-priced policies
            pricer.history.clear()
            pricer(day)
        floors.append(time.perf_counter() - started)
    best, floor = min(runs), min(floors)
    print(
        f"simulation (4 policies, seed {seeds[0]}), best of {args.repeat}: {best:.2f} s  (runs: "
        + ", ".join(f"{r:.2f}" for r in runs)
        + ")"
    )
    print(
        f"floor: engine alone, {2 * args.days} decide_batch calls: {floor:.2f} s; "
        f"simulation / floor = {best / floor:.1f}x"
    )
    print(f"item-days per second (all 4 policies): {4 * args.items * args.days / best:,.0f}")
    print(
        "elasticity goal: estimates within ±10% of the truth for the items whose prices "
        "varied enough, read as identified: " + IDENTIFIED + f"; also by {SPREAD}"
    )
    for seed in seeds:
        market = build_market(scenario, seed)
        goals: dict[str, Any] = summarise(simulate(scenario, rules, market, args.days, seed))[
            "goals"
        ]
        accuracy = goals["elasticity"]
        weekly = " ".join(
            "-" if share is None else f"{100 * share:.1f}"
            for share in goals["weekly_profit_share_of_oracle"]
        )
        over_beat_lowest = 100 * goals["profit_gain_over_beat_lowest"]
        print(
            f"seed {seed}: profit vs oracle {100 * goals['profit_share_of_oracle']:.1f}% "
            f"(weeks: {weekly}); vs beat-lowest {over_beat_lowest:+.1f}%, "
            f"vs list {100 * goals['profit_gain_over_list_price']:+.1f}%"
        )
        print(
            f"  elasticity within ±10%: {_share(accuracy['identified'])} of the "
            f"{accuracy['identified']['items']} identified items; "
            f"{_share(accuracy['spread'])} of the {accuracy['spread']['items']} with "
            f"sd(log price) >= {MIN_LOG_PRICE_SPREAD}; "
            f"{100 * accuracy['share_within_tolerance_of_all']:.1f}% of all "
            f"(median error {100 * accuracy['median_relative_error']:.1f}%, median standard "
            f"error {accuracy['median_standard_error']:.3f} pooled, "
            f"{accuracy['median_own_standard_error']:.3f} own)"
        )


def _share(subset: dict[str, Any]) -> str:
    share = subset["share_within_tolerance"]
    return "-" if share is None else f"{100 * share:.1f}%"


if __name__ == "__main__":
    main()
