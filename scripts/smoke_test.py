"""Smoke test of a deployed stage's API: price a stone, check the explanation, read the model.

    python scripts/smoke_test.py --stage staging

Reads the API's URL and a partner key's id from the stage's stack outputs (written by
`make deploy` to build/outputs-<stage>.json), fetches the key's value, and fails loudly unless:
a known stone gets a positive price whose explanation multiplies back to it (within a cent per
factor), and GET /v1/model names the model pricing now.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from contracts.names import CLOUD_STAGES, StageNames  # noqa: E402
from contracts.schema import example_diamond  # noqa: E402


def call(url: str, key: str, body: dict[str, object] | None = None) -> dict[str, object]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"x-api-key": key, "Content-Type": "application/json"},
        method="POST" if body is not None else "GET",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, object] = json.loads(response.read())
        return answer


def check(quote: dict[str, object]) -> None:
    price = float(quote["price_usd"])  # type: ignore[arg-type]
    explanation = quote["explanation"]
    assert isinstance(explanation, dict)
    factors = [float(f["factor"]) for f in explanation["factors"]]
    product = float(explanation["base_price_usd"]) * math.prod(factors)
    if not (price > 0 and abs(product - price) <= 0.01 * (len(factors) + 1)):
        raise SystemExit(f"the explanation does not multiply back: {product:.2f} vs {price:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", required=True, choices=CLOUD_STAGES)
    args = parser.parse_args()
    import boto3

    outputs = json.loads((REPO / "build" / f"outputs-{args.stage}.json").read_text())
    serving = outputs[StageNames(args.stage).stack("serving")]
    url = next(v for k, v in serving.items() if k.startswith("PriceApiApiUrl"))
    key_id = next(v for k, v in serving.items() if "PartnerExample" in k)
    key = boto3.client("apigateway").get_api_key(apiKey=key_id, includeValue=True)["value"]
    quote = call(f"{url}v1/prices", key, example_diamond())
    check(quote)
    model = call(f"{url}v1/model", key)
    print(f"{args.stage}: ${quote['price_usd']} from model v{model.get('version')}: ok")


if __name__ == "__main__":
    main()
