"""Benchmark rule-file validation (the loader that also runs on every hot reload) on
large per-SKU rule files, against reading the same YAML with PyYAML alone.

    python bench/rules.py [--sizes 1000 5000 20000] [--rounds 1]

For each size, a folder holds a copy of the repository's ``rules/`` and one more file
with that many rules, each matching one SKU (``match: {skus: [SKU-n]}``), the shape of a
per-SKU price list. Timed, in this process:

- ``validate``: ``check_ruleset`` on the folder: everything ``pricing rules validate`` does;
- ``yaml``: ``yaml.compose`` of the same files with PyYAML's pure-Python ``SafeLoader``,
  the parser the loader builds on (it keeps every value's position, which the C loader's
  composer cannot be made to do with our alias check): the floor for reading the files;
- ``yaml (C)``: the same with libyaml's ``CSafeLoader``, for reference.

The ratio ``validate / yaml`` staying flat as the size grows is what matters: validation
grew with the square of the rule count before the shadowed-rule check was indexed.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from pricing_service.rules.diagnostics import has_errors
from pricing_service.rules.loader import check_ruleset

REPO_RULES = Path(__file__).parents[1] / "rules"


def write_ruleset(folder: Path, count: int) -> None:
    shutil.copytree(REPO_RULES, folder)
    lines = ["rules:"]
    for number in range(count):
        lines += [
            f"  - id: sku-rule-{number}",
            "    description: Per-SKU price from the pricing team's list.",
            "    owner: pricing@example.com",
            f"    priority: {10_000 + number}",
            f"    match: {{skus: [SKU-{number}]}}",
            "    strategy:",
            '      discount: "5%"',
        ]
    (folder / "zz-per-sku.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def best_of(rounds: int, run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def measure(folder: Path, rounds: int) -> tuple[float, float, float]:
    """Seconds to validate the folder, and to compose its YAML with PyYAML (Python, C)."""
    texts = [p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.yaml"))]

    def validate() -> None:
        ruleset, diagnostics = check_ruleset(folder)
        if ruleset is None or has_errors(diagnostics):
            raise SystemExit(f"the generated ruleset is not valid: {diagnostics[:3]}")

    def read_with(loader: type[yaml.SafeLoader] | type[yaml.CSafeLoader]) -> None:
        for text in texts:
            yaml.compose(text, Loader=loader)

    return (
        best_of(rounds, validate),
        best_of(rounds, lambda: read_with(yaml.SafeLoader)),
        best_of(rounds, lambda: read_with(yaml.CSafeLoader)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--rounds", type=int, default=1, help="best of this many runs")
    args = parser.parse_args()
    print(f"{'rules':>7} {'validate s':>11} {'yaml s':>8} {'yaml (C) s':>11} {'validate/yaml':>14}")
    with tempfile.TemporaryDirectory() as scratch:
        for count in args.sizes:
            folder = Path(scratch) / f"rules-{count}"
            write_ruleset(folder, count)
            validated, python_yaml, c_yaml = measure(folder, args.rounds)
            print(
                f"{count:>7} {validated:>11.2f} {python_yaml:>8.2f} {c_yaml:>11.2f} "
                f"{validated / python_yaml:>13.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
