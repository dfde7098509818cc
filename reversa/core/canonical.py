"""Canonical JSON and hashing, shared by plan hashing and the audit chain."""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["canonical_json", "sha256_hex", "to_jsonable"]


# One encoder for the process: json.dumps with options builds a new encoder on
# every call, a measurable share of the per-step write path (it runs for every
# audit entry, state record and result).
_ENCODE = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def canonical_json(value: Any) -> str:
    """Serialise deterministically: sorted keys, no whitespace, UTF-8, no NaN."""
    return _ENCODE(value)


def sha256_hex(text: str) -> str:
    """SHA-256 of the UTF-8 encoding, as lowercase hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def to_jsonable(value: Any) -> Any:
    """Convert a handler's return value into plain JSON data.

    Accepts JSON types, tuples, sets (sorted), Decimal (as string), enums,
    dataclasses and pydantic models. Anything else is a programming error in
    the handler and raises ``TypeError`` naming the type.
    """
    from dataclasses import asdict, is_dataclass
    from decimal import Decimal
    from enum import Enum

    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise TypeError("handler returned a non-finite float; return a string or None instead")
        return value
    if isinstance(value, Enum):
        return to_jsonable(value.value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(to_jsonable(v) for v in value)
    if is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(asdict(value))
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return to_jsonable(dump(mode="json"))
    if isinstance(value, bytes):
        return "0x" + value.hex()
    raise TypeError(
        f"handler returned {type(value).__name__}, which is not JSON-serialisable; "
        "return dicts, lists, strings, numbers, booleans or None"
    )
