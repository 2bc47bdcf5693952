"""From request bytes to a BuildRequest, or to a list of problems a person can act on."""

from __future__ import annotations

import difflib
import json
import re
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from shared.models.problems import CROSS_FIELD_ERROR, Problem, RequestInvalid, RequestTooLarge
from shared.models.request import MAX_REQUEST_BYTES, BuildRequest

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Plain sentences for pydantic's error types; {name} fields come from the error's ctx.
_MESSAGES = {
    "missing": "this field is required",
    "string_type": "must be a string (text in double quotes)",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "list_type": "must be a list ([...])",
    "dict_type": "must be an object ({{...}}) of names to strings",
    "model_type": "must be an object ({{...}})",
    "model_attributes_type": "must be an object ({{...}})",
    "none_required": "must be null",
    "greater_than": "must be more than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "finite_number": "must be a finite number",
    "string_too_short": "must be at least {min_length} characters long",
    "string_too_long": "must be at most {max_length} characters long",
    "too_short": "must have at least {min_length} entries",
    "too_long": "must have at most {max_length} entries",
    "literal_error": "must be one of {expected}",
    "string_pattern_mismatch": "does not have the expected format ({pattern})",
}


def parse_build_request(body: bytes) -> BuildRequest:
    """Parse and validate a POST /api/builds body.

    Raises RequestTooLarge above MAX_REQUEST_BYTES, and RequestInvalid listing every problem
    found (field path plus message) for invalid JSON, wrong types or broken rules.
    """
    if len(body) > MAX_REQUEST_BYTES:
        raise RequestTooLarge(len(body), MAX_REQUEST_BYTES)
    document = _load_json(bytes(body))
    if not isinstance(document, dict):
        raise RequestInvalid([Problem(field="", message="the request must be a JSON object {...}")])
    try:
        return BuildRequest.model_validate(document, strict=True)
    except ValidationError as error:
        raise RequestInvalid(problems_from_validation_error(error, BuildRequest)) from None


def problems_from_validation_error(
    error: ValidationError, model: type[BaseModel] = BuildRequest
) -> list[Problem]:
    """Turn pydantic's errors on `model` into problems with paths like 'data[0].destination'."""
    problems: list[Problem] = []
    for detail in error.errors(include_url=False):
        problems.extend(_problems_from_detail(detail, model))
    return problems


def field_path(loc: Sequence[int | str]) -> str:
    """('data', 0, 'destination') -> 'data[0].destination'; odd keys are quoted: tags["a b"]."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            path += f".{part}" if path else part
        else:
            path += f"[{json.dumps(part)}]"
    return path


def _load_json(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestInvalid([Problem(field="", message="the request is not UTF-8 text")]) from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        message = f"the request is not valid JSON: {error.msg} at {where}"
        raise RequestInvalid([Problem(field="", message=message)]) from None
    except ValueError as error:
        raise RequestInvalid([Problem(field="", message=str(error))]) from None
    except RecursionError:
        message = "the request is nested too deeply to be a build request"
        raise RequestInvalid([Problem(field="", message=message)]) from None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the field '{key}' appears twice in one object; keep one")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _problems_from_detail(detail: ErrorDetails, model: type[BaseModel]) -> list[Problem]:
    loc = list(detail["loc"])
    kind = detail["type"]
    ctx = detail.get("ctx") or {}
    if kind == CROSS_FIELD_ERROR:
        base = field_path(loc)
        return [Problem(field=_join(base, sub), message=msg) for sub, msg in ctx["problems"]]
    if kind == "extra_forbidden":
        return [Problem(field=field_path(loc), message=_unknown_field_message(model, loc))]
    if kind == "value_error":
        message = str(ctx.get("error", detail["msg"]))
    elif kind == "missing":
        message = _missing_message(model, loc)
    elif kind in ("too_short", "string_too_short") and ctx.get("min_length") == 1:
        message = "must not be empty"
    else:
        message = _plain_message(kind, ctx, detail["msg"])
    return [Problem(field=field_path(loc), message=message)]


def _plain_message(kind: str, ctx: dict[str, Any], fallback: str) -> str:
    template = _MESSAGES.get(kind)
    if template is None:
        return fallback
    try:
        return template.format(**{k: _show(v) for k, v in ctx.items()})
    except (KeyError, IndexError):  # a ctx pydantic did not provide: its own text is better
        return fallback


def _join(base: str, sub: str) -> str:
    if not base:
        return sub
    return f"{base}{sub}" if sub.startswith("[") else f"{base}.{sub}"


def _show(value: Any) -> str:
    return str(value).replace(" or ", ", ") if isinstance(value, str) else str(value)


def _unknown_field_message(model: type[BaseModel], loc: list[int | str]) -> str:
    owner = _model_at(model, loc[:-1])
    if owner is None:
        return "unknown field"
    allowed = list(owner.model_fields)
    message = f"unknown field; allowed fields here are: {', '.join(allowed)}"
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    return f"{message} (did you mean '{close[0]}'?)" if close else message


def _missing_message(model: type[BaseModel], loc: list[int | str]) -> str:
    owner = _model_at(model, loc[:-1])
    field = owner.model_fields.get(str(loc[-1])) if owner else None
    if field is None or not field.description:
        return "this field is required"
    return f"this field is required: {field.description}"


def _model_at(model: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model class that holds the fields at `loc` (list indexes are stepped over)."""
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int):
            continue
        if current is None or part not in current.model_fields:
            return None
        current = _inner_model(current.model_fields[part].annotation)
    return current


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None
