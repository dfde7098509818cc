"""Money in integer minor units, converted with Decimal (never binary floats).

Ledgers hold integers (pence, cents), as TigerBeetle does. Plans and venues speak
major units (``"47500.00"``, ``116400.0``); these helpers convert at the edge with
banker's rounding, so one minor unit is the worst rounding error anywhere.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

__all__ = ["format_money", "minor_units", "to_major", "to_minor"]

_EXPONENTS: dict[str, int] = {"JPY": 0, "KRW": 0, "BHD": 3, "KWD": 3}


def minor_units(currency: str) -> int:
    """Number of decimal places of ``currency`` (2 unless ISO 4217 says otherwise)."""
    return _EXPONENTS.get(currency.upper(), 2)


def to_minor(amount: str | int | float | Decimal, currency: str) -> int:
    """Major units -> integer minor units, rounded half-even.

    Raises:
        ValueError: ``amount`` is not a finite number.
    """
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        raise ValueError(f"amount {amount!r} is not a number; pass e.g. '47500.00'") from None
    if not value.is_finite():
        raise ValueError(f"amount {amount!r} is not finite")
    scaled = value.scaleb(minor_units(currency)).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return int(scaled)


def to_major(amount: int, currency: str) -> Decimal:
    """Integer minor units -> exact Decimal major units."""
    return Decimal(amount).scaleb(-minor_units(currency))


def format_money(amount: int, currency: str) -> str:
    """``4750000, "GBP"`` -> ``"GBP 47,500.00"``."""
    places = minor_units(currency)
    return f"{currency} {to_major(amount, currency):,.{places}f}"
