"""Request bodies → validated stones: a JSON array or object, a CSV body or a CSV upload.

Everything here is untrusted input. Sizes are bounded before this runs (serving.guards); JSON
nesting is bounded by the parser's own recursion guard, reported as a 422; CSV cells are turned
into numbers here so that the strict Diamond model rejects JSON's `true` or `"0.7"` but a CSV's
`0.7` is read as the number it is.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any, Final

from fastapi import Request
from pydantic import TypeAdapter, ValidationError
from starlette.exceptions import HTTPException

from contracts.api import CSV, JSON, MULTIPART
from contracts.schema import FEATURE_NAMES, NUMERIC_FEATURES, Diamond
from serving.errors import InvalidRowsError, PayloadTooLargeError, UnsupportedMediaTypeError

MAX_REPORTED_PROBLEMS: Final = 50
PARSED_JSON_STATE: Final = "facet_json"  # set by serving.guards when it parsed the body already
_DIAMONDS: Final = TypeAdapter(list[Diamond])  # type: ignore[valid-type]
_NUMERIC: Final = frozenset(feature.name for feature in NUMERIC_FEATURES)


def field_name(location: Sequence[Any]) -> str:
    parts = [p for p in location if p not in ("body", "query")]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def problems_from(errors: Sequence[Any], prefix: str = "") -> list[dict[str, Any]]:
    problems = []
    for error in errors[:MAX_REPORTED_PROBLEMS]:
        name = field_name(list(error.get("loc", ())))
        if prefix:
            name = f"{prefix}{name}" if name.startswith("[") else f"{prefix}.{name}"
        message = str(error.get("msg", "invalid"))
        if error.get("type") == "missing":
            message = "Field required"
        problems.append({"field": name, "message": message})
    return problems


def parse_json(body: bytes) -> Any:
    """JSON, or InvalidRowsError saying where it breaks; deep nesting is an error, not a crash."""
    try:
        return json.loads(body or b"null")
    except RecursionError:
        raise InvalidRowsError(
            "The JSON is nested too deeply: send an array of flat objects.",
            [{"field": "body", "message": "nested too deeply"}],
        ) from None
    except UnicodeDecodeError as error:
        raise InvalidRowsError(
            f"The body is not UTF-8 text (byte {error.start}).",
            [{"field": "body", "message": "not UTF-8"}],
        ) from None
    except ValueError as error:
        raise InvalidRowsError(
            f"The body is not valid JSON: {error}", [{"field": "body", "message": str(error)}]
        ) from None


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def stones_from(
    request: Request, limit: int, *, headerless_csv: bool = False
) -> list[dict[str, Any]]:
    """Validated stones (at most `limit`), in the order sent; nothing is priced if any is bad."""
    kind = media_type(request)
    if kind == JSON:
        parsed = getattr(request.state, PARSED_JSON_STATE, None)
        payload = parsed if parsed is not None else parse_json(await request.body())
        records = _json_records(payload)
    elif kind == CSV:
        records = csv_records(await request.body(), headerless_csv)
    elif kind == MULTIPART:
        try:
            form = await request.form(max_files=1, max_fields=10)
        except HTTPException as error:  # Starlette's 400 for a form it will not read
            raise InvalidRowsError(
                f"The form cannot be read: {error.detail}. Send one field, 'file', with the CSV.",
                [{"field": "body", "message": str(error.detail)}],
            ) from None
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidRowsError(
                "Attach the CSV as the form field 'file'.",
                [{"field": "file", "message": "Field required"}],
            )
        records = csv_records(await upload.read(), headerless_csv)
    else:
        raise UnsupportedMediaTypeError(
            f"Content-Type {kind or '(none)'} is not supported: send {JSON}, {CSV} or {MULTIPART}."
        )
    if not records:
        raise InvalidRowsError("The batch has no rows.", [{"field": "body", "message": "no rows"}])
    if len(records) > limit:
        raise PayloadTooLargeError(
            f"The batch has {len(records):,} rows; the limit is {limit:,} per request."
        )
    try:
        diamonds = _DIAMONDS.validate_python(records)
    except ValidationError as error:
        problems = problems_from(error.errors(), prefix="rows")
        raise InvalidRowsError(
            f"{error.error_count()} problem(s) in the batch; nothing was priced. "
            f"First: {problems[0]['field']}: {problems[0]['message']}",
            problems,
        ) from None
    return [d.model_dump() for d in diamonds]


def _json_records(payload: Any) -> list[Any]:
    if isinstance(payload, dict) and "instances" in payload:
        payload = payload["instances"]  # SageMaker's JSON convention
    elif isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list):
        raise InvalidRowsError(
            "Send a JSON array of diamonds.", [{"field": "body", "message": "expected an array"}]
        )
    return payload


def _cell(name: str, text: str) -> Any:
    value = text.strip()
    if name not in _NUMERIC:
        return value
    try:
        return float(value)
    except ValueError:
        return value  # the strict model then names the field: "Input should be a valid number"


def csv_records(body: bytes, headerless: bool) -> list[dict[str, Any]]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidRowsError(
            f"The CSV is not UTF-8 text (byte {error.start}).",
            [{"field": "body", "message": "not UTF-8"}],
        ) from None
    try:
        rows = [row for row in csv.reader(io.StringIO(text)) if row]
    except csv.Error as error:
        raise InvalidRowsError(
            f"The CSV cannot be read: {error}", [{"field": "body", "message": str(error)}]
        ) from None
    if not rows:
        return []
    header = [cell.strip() for cell in rows[0]]
    if set(FEATURE_NAMES) <= set(header):
        names, data = header, rows[1:]
    elif headerless:
        names, data = list(FEATURE_NAMES), rows
    else:
        missing = [n for n in FEATURE_NAMES if n not in header]
        raise InvalidRowsError(
            f"The CSV header lacks: {', '.join(missing)}. "
            f"Expected columns: {', '.join(FEATURE_NAMES)}.",
            [{"field": name, "message": "missing column"} for name in missing],
        )
    keep = [i for i, name in enumerate(names) if name in FEATURE_NAMES]
    records = []
    for number, row in enumerate(data, start=1):
        if len(row) != len(names):
            raise InvalidRowsError(
                f"CSV row {number} has {len(row)} fields, expected {len(names)}.",
                [
                    {
                        "field": f"rows[{number - 1}]",
                        "message": f"{len(row)} fields, expected {len(names)}",
                    }
                ],
            )
        records.append({names[i]: _cell(names[i], row[i]) for i in keep})
    return records
