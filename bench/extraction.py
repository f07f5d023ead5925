"""Score the product-page extractor on the shared real-page dataset.

    python bench/extraction.py [--data DIR] [--misses] [--passes N] [--no-baseline]

Scoring follows the dataset's README: per attribute, each page yields at most one
value; a value among the page's values is a hit, any other value is a false positive
(and, when the page has values, also a miss); nothing returned on a page that has a
value is a miss. Prices compare as decimals; an empty availability counts as InStock.
The same run scores a baseline, extruct + price-parser over semantic markup only.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import extruct  # noqa: E402  (after the path setup that makes `crawlers` importable)
from price_parser import Price  # noqa: E402

from crawlers.extraction import extract_product  # noqa: E402

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "datasets" / "product-pages"
ATTRIBUTES = ("price", "availability", "sku")
# The extraction issue's goals, generic extraction only.
GOALS = {"price": 0.93, "availability": 0.97, "sku": 0.85}
SPEED_GOAL = 50.0

Answer = dict[str, str | None]


@dataclass
class Score:
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    misses: list[str] = field(default_factory=list)

    def add(self, page_id: str, returned: str | None, expected: list[str], same: Any) -> None:
        if returned is None:
            if expected:
                self.false_negatives += 1
                self.misses.append(f"{page_id[:8]}: none, want {expected}")
            return
        if any(same(returned, value) for value in expected):
            self.true_positives += 1
            return
        self.false_positives += 1
        if expected:
            self.false_negatives += 1
        self.misses.append(f"{page_id[:8]}: {returned!r}, want {expected}")

    @property
    def precision(self) -> float:
        returned = self.true_positives + self.false_positives
        return self.true_positives / returned if returned else 0.0

    @property
    def recall(self) -> float:
        relevant = self.true_positives + self.false_negatives
        return self.true_positives / relevant if relevant else 0.0

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


def _same_price(returned: str, expected: str) -> bool:
    try:
        return Decimal(returned.strip()) == Decimal(expected.strip())
    except InvalidOperation:
        return False


def _same_text(returned: str, expected: str) -> bool:
    return returned.strip() == expected.strip()


def score(answers: dict[str, Answer], truth: dict[str, dict[str, Any]]) -> dict[str, Score]:
    scores = {attribute: Score() for attribute in ATTRIBUTES}
    for page_id, expected in truth.items():
        answer = answers[page_id]
        scores["price"].add(page_id, answer["price"], expected.get("price", []), _same_price)
        scores["sku"].add(page_id, answer["sku"], expected.get("sku", []), _same_text)
        scores["availability"].add(
            page_id,
            answer["availability"] or "InStock",
            expected.get("availability", []),
            _same_text,
        )
    return scores


def run_extractor(pages: dict[str, bytes], urls: dict[str, str]) -> tuple[dict[str, Answer], float]:
    answers: dict[str, Answer] = {}
    started = time.perf_counter()
    for page_id, compressed in pages.items():
        result = extract_product(gzip.decompress(compressed), urls[page_id]).to_json_dict()
        answers[page_id] = {a: _as_text(result[a]) for a in ATTRIBUTES}
    return answers, time.perf_counter() - started


def _as_text(value: object) -> str | None:
    return None if value is None else str(value)


def _baseline_page(html: str, url: str) -> Answer:
    data = extruct.extract(
        html, base_url=url, syntaxes=["json-ld", "microdata", "opengraph"], uniform=True
    )
    products = [
        item
        for syntax in ("json-ld", "microdata")
        for item in data.get(syntax, [])
        if isinstance(item, dict) and "Product" in str(item.get("@type"))
    ]
    answer: Answer = {"price": None, "availability": None, "sku": None}
    for product in products:
        offers = product.get("offers")
        offer = offers[0] if isinstance(offers, list) and offers else offers
        if isinstance(offer, dict) and answer["price"] is None:
            raw = offer.get("price") or offer.get("lowPrice")
            amount = Price.fromstring(str(raw)).amount if raw is not None else None
            answer["price"] = None if amount is None else str(amount)
            availability = str(offer.get("availability") or "")
            if "OutOfStock" in availability or "SoldOut" in availability:
                answer["availability"] = "OutOfStock"
        if answer["sku"] is None and product.get("sku"):
            answer["sku"] = str(product["sku"])
    for og in data.get("opengraph", []):
        raw = og.get("product:price:amount") or og.get("og:price:amount")
        if answer["price"] is None and raw:
            amount = Price.fromstring(str(raw)).amount
            answer["price"] = None if amount is None else str(amount)
    return answer


def run_baseline(pages: dict[str, bytes], urls: dict[str, str]) -> dict[str, Answer]:
    answers = {}
    for page_id, compressed in pages.items():
        html = gzip.decompress(compressed).decode("utf-8", errors="replace")
        answers[page_id] = _baseline_page(html, urls[page_id])
    return answers


def print_scores(title: str, scores: dict[str, Score], show_misses: bool) -> None:
    print(title)
    for attribute, attribute_score in scores.items():
        print(
            f"  {attribute:<13} P={attribute_score.precision:.3f} "
            f"R={attribute_score.recall:.3f} F1={attribute_score.f1:.3f}"
        )
        if show_misses:
            for miss in attribute_score.misses:
                print(f"      {miss}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="dataset directory")
    parser.add_argument("--misses", action="store_true", help="list every wrong or missing value")
    parser.add_argument("--no-baseline", action="store_true", help="skip the extruct baseline")
    parser.add_argument("--passes", type=int, default=5, help="timed passes per core")
    arguments = parser.parse_args(argv)
    if arguments.passes < 1:
        parser.error("--passes must be at least 1")
    if not (arguments.data / "ground-truth.json").is_file():
        parser.error(
            f"no dataset at {arguments.data} (ground-truth.json and html/<id>.html.gz): "
            "pass its folder with --data (README.md, Benchmarks)"
        )
    truth: dict[str, dict[str, Any]] = json.loads(
        (arguments.data / "ground-truth.json").read_text(encoding="utf-8")
    )
    pages = {
        page_id: (arguments.data / "html" / f"{page_id}.html.gz").read_bytes() for page_id in truth
    }
    urls = {page_id: str(expected.get("url", "")) for page_id, expected in truth.items()}
    print(f"machine at start: load average {os.getloadavg()[0]:.2f} (1 min)")
    # The first pass fills the extractor's caches and is not timed. The timed passes
    # take turns on each core, pinned: on these shared machines one core is often much
    # slower than the other, and an unpinned process drifts between them. The goal is
    # judged on the median of every pass.
    answers, _ = run_extractor(pages, urls)
    cores = sorted(os.sched_getaffinity(0))
    per_core: dict[int, list[float]] = {core: [] for core in cores}
    for index in range(arguments.passes * len(cores)):
        core = cores[index % len(cores)]
        os.sched_setaffinity(0, {core})
        per_core[core].append(len(pages) / run_extractor(pages, urls)[1])
    os.sched_setaffinity(0, set(cores))
    print(f"{len(pages)} pages from {arguments.data}")
    scores = score(answers, truth)
    print_scores("crawlers.extraction (generic chain)", scores, arguments.misses)
    speed = statistics.median([rate for rates in per_core.values() for rate in rates])
    print(
        f"  speed         {speed:.1f} pages/s, {1000 / speed:.1f} ms/page: median of "
        f"{arguments.passes} passes on each of {len(cores)} cores, each pass one core "
        "(gunzip + decode + extract)"
    )
    for core, rates in per_core.items():
        listed = ", ".join(f"{rate:.1f}" for rate in rates)
        print(f"    core {core}: median {statistics.median(rates):.1f} pages/s ({listed})")
    for attribute, goal in GOALS.items():
        f1 = scores[attribute].f1
        print(f"GOAL {attribute} F1 >= {goal}: {'MET' if f1 >= goal else 'MISSED'} ({f1:.3f})")
    print(
        f"GOAL speed >= {SPEED_GOAL} pages/s: {'MET' if speed >= SPEED_GOAL else 'MISSED'} "
        f"({speed:.1f}, median pass of all cores)"
    )
    if not arguments.no_baseline:
        print_scores(
            "baseline: extruct + price-parser, semantic markup only",
            score(run_baseline(pages, urls), truth),
            show_misses=False,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
