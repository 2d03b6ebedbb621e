"""msgspec's decode errors as the caller's error, naming the field that is wrong."""

from __future__ import annotations

import msgspec

from failwell.errors import InvalidInput

_MISSING = "Object missing required field `"


def invalid_from_msgspec(exc: msgspec.DecodeError) -> InvalidInput:
    """Turn msgspec's message ("Expected `str`, got `int` - at `$.inputs.user_id`") into an
    InvalidInput naming the field: 422 when the JSON is valid but a value is not, 400 when the
    body is not JSON."""
    text = str(exc)
    field = None
    if " - at `$" in text:
        text, _, path = text.partition(" - at `$")
        field = path.rstrip("`").lstrip(".") or None
    if text.startswith(_MISSING):  # "Object missing required field `input`"
        name = text[len(_MISSING) :].rstrip("`")
        field = f"{field}.{name}" if field else name
    if isinstance(exc, msgspec.ValidationError):
        return InvalidInput(f"{field}: {text}" if field else text, field=field)
    return InvalidInput(f"body is not valid JSON: {text}", field=field, status=400)
