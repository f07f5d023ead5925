from __future__ import annotations

from pathlib import Path

import pytest

# A small valid ruleset split the way the pricing team splits theirs.
GOOD_RULESET = {
    "pricing.yaml": """\
timezone: Europe/Berlin
segments:
  channel: [web, app]
guardrails:
  min_price: 1.00
  max_price: 5000
  cooldown: 6h
default:
  strategy: {cost_plus: "35%"}
""",
    "market.yaml": """\
competitors:
  megamart: {name: MegaMart, domains: [megamart.example]}
events:
  summer_sale:
    name: Summer sale
    month_day: "07-01"
    duration_days: 14
""",
    "rules.yaml": """\
rules:
  - id: follow-megamart
    description: Beat MegaMart by 1% on electronics
    owner: maria@example.com
    priority: 100
    match:
      categories: [electronics]
      segment: {channel: app}
    strategy:
      competitor: {reference: competitor, competitor: megamart, action: beat, by: "1%"}
    fallback:
      - fixed: 19.99
    adjustments:
      - id: summer
        when: {events: [summer_sale], hours: "09:00-17:30"}
        change: "-10%"
""",
}


@pytest.fixture
def good_files() -> dict[str, str]:
    return dict(GOOD_RULESET)


@pytest.fixture
def good_folder(tmp_path: Path, good_files: dict[str, str]) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    for name, text in good_files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder
