"""The ``pricing`` command with a bad setting in its environment: one line naming the
variable and what is wrong with it, exit code 2, nothing started."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from crawlers.settings import CrawlerSettings
from pricing_service import cli
from pricing_service.settings import Settings, get_settings


def _exit_code_of_pricing(monkeypatch: pytest.MonkeyPatch, arguments: list[str]) -> object:
    """Run ``pricing ARGUMENTS`` as the console script does, settings read afresh; the
    code it exits with."""
    monkeypatch.setattr(sys, "argv", ["pricing", *arguments])
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as stopped:
            cli.main()
    finally:
        get_settings.cache_clear()
    return stopped.value.code


@pytest.mark.parametrize(
    ("variable", "value", "command", "message"),
    [
        ("PRICING_QUEUE_PARTITIONS", "0", "repricer", "greater than or equal to 1"),
        ("PRICING_CRAWL_QUEUE_PARTITIONS", "many", "scheduler", "a valid integer"),
        ("PRICING_CRAWL_FX_RATES", "EUR=1.1", "scheduler", 'field "fx_rates"'),
    ],
)
def test_a_bad_setting_is_named_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    command: str,
    message: str,
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # never reached
    monkeypatch.setenv(variable, value)
    assert _exit_code_of_pricing(monkeypatch, [command]) == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error
    assert message in error
    if "fx_rates" not in message:
        assert f"invalid setting {variable}={value!r}" in error


@pytest.mark.parametrize(
    "arguments", [["explain", "TV-55-OLED"], ["rules", "preview", "rules"], ["reprice", "--all"]]
)
def test_a_redis_out_of_reach_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], arguments: list[str]
) -> None:
    monkeypatch.chdir(Path(__file__).parents[1])
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    assert _exit_code_of_pricing(monkeypatch, arguments) == 1
    error = capsys.readouterr().err
    assert "Traceback" not in error
    [line] = error.strip().splitlines()
    assert line.startswith("cannot reach Redis: ")
    assert "127.0.0.1:1" in line
    assert line.endswith("(REDIS_URL)")  # the setting that chose it, not "neither set"


@pytest.mark.parametrize("settings_class", [Settings, CrawlerSettings])
def test_every_setting_is_in_the_readme(settings_class: type[BaseSettings]) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    prefix = str(settings_class.model_config.get("env_prefix", ""))
    undocumented = []
    for name, field in settings_class.model_fields.items():
        alias = field.validation_alias
        variables = (
            [f"{prefix}{name}".upper()]
            if alias is None
            else [str(choice) for choice in getattr(alias, "choices", [alias])]
        )
        if not any(f"`{variable.upper()}`" in readme for variable in variables):
            undocumented.append(variables[0])
    assert undocumented == []
