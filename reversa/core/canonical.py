"""Canonical JSON and hashing, shared by plan hashing and the audit chain."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import Any
from uuid import UUID

__all__ = ["canonical_json", "sha256_hex", "to_jsonable", "to_recordable"]


# One encoder for the process: json.dumps with options builds a new encoder on
# every call, a measurable share of the per-step write path (it runs for every
# audit entry, state record and result, about a dozen times per step).
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_ENCODE = _ENCODER.encode


def _c_encoder() -> Any:
    """The C encoder ``JSONEncoder.encode`` itself uses, built once (None without it).

    ``encode`` builds this very object anew on every call, with a fresh dict of
    the containers being encoded for cycle detection; built once, it has no such
    dict (a dict left behind by a failed call would report false cycles), so a
    cyclic value fails with RecursionError instead of ValueError. Values given
    here come from ``to_jsonable`` or the engine's own records: never cyclic.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return None
    e = _ENCODER
    return make(None, e.default, json.encoder.encode_basestring, None, e.key_separator,
                e.item_separator, e.sort_keys, e.skipkeys, e.allow_nan)


_C_ENCODE = _c_encoder()


def canonical_json(value: Any) -> str:
    """Serialise deterministically: sorted keys, no whitespace, UTF-8, no NaN."""
    if _C_ENCODE is None:
        return _ENCODE(value)
    return "".join(_C_ENCODE(value, 0))


def sha256_hex(text: str) -> str:
    """SHA-256 of the UTF-8 encoding, as lowercase hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def to_jsonable(value: Any) -> Any:
    """Convert a handler's return value into plain JSON data.

    Accepts JSON types, tuples, sets (sorted), Decimal (as string), enums,
    dataclasses, pydantic models, bytes (hex), dates and times (ISO 8601), UUIDs
    and paths. Anything else is a programming error in the handler and raises
    ``TypeError`` naming the type.
    """
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
    if isinstance(value, Mapping):
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
    if isinstance(value, datetime | date | time | UUID | PurePath):
        return value.isoformat() if isinstance(value, datetime | date | time) else str(value)
    raise TypeError(
        f"handler returned {type(value).__name__}, which is not JSON-serialisable; "
        "return dicts, lists, strings, numbers, booleans or None"
    )


def to_recordable(value: Any) -> Any:
    """:func:`to_jsonable` for evidence (check details, probe results, reports): never raises.

    What a predicate, probe or estimator hands back as *evidence* is recorded in
    the audit chain and the reports. Evidence of a type JSON cannot hold must not
    stop a rollback, so a value :func:`to_jsonable` refuses is recorded as
    ``"<unrecordable TYPE>"`` (its type only: an arbitrary object's text may hold
    a secret).
    """
    try:
        return to_jsonable(value)
    except (TypeError, ValueError, RecursionError):
        pass
    if isinstance(value, Mapping):
        return {str(k): to_recordable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_recordable(v) for v in value]
    return f"<unrecordable {type(value).__name__}>"
