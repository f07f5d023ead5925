"""`pricing extract`: run the product-page extractor on files or URLs.

Registered by `pricing_service.cli` as `app.command("extract")(crawlers.cli.extract)`.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Annotated

import httpx
import typer

from crawlers.extraction import PageLoadError, ProductResult, extract_product

_FETCH_TIMEOUT_SECONDS = 20.0
_USER_AGENT = "pricing-service-extractor/0.1 (+https://github.com/)"


def load_page(source: str) -> tuple[bytes, str | None, str | None]:
    """Page bytes, its URL (if fetched) and Content-Type header, from a path or URL."""
    if source.startswith(("http://", "https://")):
        try:
            response = httpx.get(
                source,
                follow_redirects=True,
                timeout=_FETCH_TIMEOUT_SECONDS,
                headers={"User-Agent": _USER_AGENT},
            )
            response.raise_for_status()
        except httpx.HTTPError as error:
            raise PageLoadError(f"cannot fetch {source}: {error}") from error
        return response.content, str(response.url), response.headers.get("content-type")
    path = Path(source)
    try:
        raw = path.read_bytes()
        return (gzip.decompress(raw) if path.suffix == ".gz" else raw), None, None
    except (OSError, gzip.BadGzipFile) as error:
        raise PageLoadError(f"cannot read {source}: {error}") from error


def _readable(source: str, result: ProductResult) -> str:
    if result.blocked:
        return f"{source}\n  blocked: CAPTCHA, bot wall or error page; no price"
    price = "none" if result.price is None else f"{result.price} {result.currency or ''}".strip()
    if result.price_is_lowest:
        price += " (lowest of several variant prices)"
    lines = [
        source,
        f"  price:        {price}",
        f"  availability: {result.availability or 'unknown'}",
        f"  sku:          {result.sku or 'none'}",
        f"  gtin:         {result.gtin or 'none'}",
    ]
    if result.shipping is not None:
        lines.append(f"  shipping:     {result.shipping}")
    lines.append(f"  method:       {result.method} (confidence {result.confidence:.2f})")
    return "\n".join(lines)


def extract(
    paths: Annotated[
        list[str],
        typer.Argument(help="Product pages: .html or .html.gz files, or http(s) URLs."),
    ],
    jsonl: Annotated[
        bool,
        typer.Option(
            "--jsonl",
            help='One JSON object per input: {"file", "price", "currency", "availability", '
            '"sku", "gtin", "method", "confidence"}; prices are decimal strings.',
        ),
    ] = False,
    url: Annotated[
        str | None,
        typer.Option(help="The page's original URL, for files saved from the web."),
    ] = None,
) -> None:
    """Extract the main product's price, availability and codes from product pages."""
    failed = False
    for source in paths:
        try:
            raw, fetched_url, content_type = load_page(source)
        except PageLoadError as error:
            typer.echo(str(error), err=True)
            failed = True
            continue
        result = extract_product(raw, fetched_url or url, content_type=content_type)
        if jsonl:
            record = {"file": source, **result.to_json_dict()}
            typer.echo(json.dumps(record, ensure_ascii=False))
        else:
            typer.echo(_readable(source, result))
    if failed:
        raise typer.Exit(code=1)
