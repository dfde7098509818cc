"""Translate node, relay and web3 errors into Reversa errors at the adapter boundary.

The engine decides retries and in-doubt handling from the error type alone, so
the one question each branch answers is: could the transaction have reached
the network? A refused connection means it did not (transient); a read
timeout means it may have (outcome unknown); a node rejection says exactly
what happened (nonce used, fee too low, funds missing, execution reverted).
Messages quote the node's reason, never the request: a request body holds a
signed transaction and a relay URL may hold an API key.
"""

from __future__ import annotations

import re

from reversa.core.errors import (
    Fenced,
    OutcomeUnknown,
    PermanentError,
    ReversaError,
    StepError,
    TransientError,
)

__all__ = ["NonceTooLow", "ReplacementUnderpriced", "TxRejected", "translate"]


class TxRejected(PermanentError):
    """The node refused the transaction: it was not accepted and will not be mined."""

    default_code = "tx_rejected"


class NonceTooLow(TransientError):
    """The nonce is already used on chain: re-learn nonces and sign again."""

    default_code = "nonce_too_low"


class ReplacementUnderpriced(TransientError):
    """A same-nonce replacement did not outbid the pending transaction enough."""

    default_code = "replacement_underpriced"


_FENCED = re.compile(r"fencing token|\bfenced\b", re.I)
_ALREADY_KNOWN = re.compile(r"already known|known transaction|already imported", re.I)
_NONCE_LOW = re.compile(
    r"nonce too low|invalid transaction nonce|nonce has already been used", re.I
)
_UNDERPRICED = re.compile(r"replacement transaction underpriced|replacement.*underpriced", re.I)
_FEE_LOW = re.compile(
    r"fee cap less than block base fee|lower than block's base fee|max fee per gas less than"
    r"|transaction underpriced|fee too low",
    re.I,
)
_FUNDS = re.compile(r"insufficient funds|not have enough balance|insufficient balance for", re.I)
_REVERT = re.compile(r"execution reverted|revert|transactionfailed", re.I)
_UNREACHABLE = re.compile(
    r"connection refused|failed to establish|max retries exceeded|name or service not known"
    r"|connection reset before|cannot connect",
    re.I,
)
_TIMEOUT = re.compile(r"timed out|timeout", re.I)


def is_already_known(exc: BaseException) -> bool:
    """Whether the node says it already has this exact transaction (success for us)."""
    return bool(_ALREADY_KNOWN.search(_text(exc)))


def translate(exc: BaseException, what: str, *, sent: bool) -> StepError:
    """Map a vendor exception to the most specific Reversa error.

    Args:
        exc: What web3, the node or the relay raised.
        what: What we were doing, for the message (``"submit approve"``).
        sent: Whether a signed transaction was on its way (a timeout then
            means the outcome is unknown rather than transient).
    """
    if isinstance(exc, StepError):
        return exc
    if isinstance(exc, ReversaError):
        return PermanentError(exc.message, code=exc.code)
    text = _text(exc)
    reason = _reason(text)
    if _FENCED.search(text):
        # A relay that checks fencing tokens saw a newer owner of this saga: this
        # process lost the saga, and the transaction was not taken.
        return Fenced(f"{what}: refused, the saga has a newer owner ({reason})")
    if _NONCE_LOW.search(text):
        return NonceTooLow(f"{what}: the node says the nonce is already used ({reason})")
    if _UNDERPRICED.search(text):
        return ReplacementUnderpriced(f"{what}: replacement underpriced ({reason})")
    if _FEE_LOW.search(text):
        return TransientError(f"{what}: fee below the node's minimum ({reason})", code="fee_low")
    if _FUNDS.search(text):
        return TxRejected(
            f"{what}: the account cannot pay for it ({reason})", code="insufficient_funds"
        )
    if _REVERT.search(text) or type(exc).__name__ in {"ContractLogicError", "TransactionFailed"}:
        return PermanentError(f"{what}: execution reverted ({reason})", code="reverted")
    if _UNREACHABLE.search(text) or isinstance(exc, ConnectionRefusedError):
        return TransientError(f"{what}: endpoint unreachable ({type(exc).__name__})",
                              code="unreachable")
    if _TIMEOUT.search(text) or isinstance(exc, TimeoutError):
        if sent:
            return OutcomeUnknown(
                f"{what}: no answer in time; the transaction may have been accepted",
                code="submit_timeout",
            )
        return TransientError(f"{what}: timed out ({type(exc).__name__})", code="timeout")
    if sent:
        return OutcomeUnknown(
            f"{what}: unexpected {type(exc).__name__} while submitting ({reason})",
            code="submit_unknown",
        )
    return TransientError(f"{what}: {type(exc).__name__} ({reason})", code="node_error")


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


_HEX_BLOB = re.compile(r"0x[0-9a-fA-F]{80,}")


def _reason(text: str) -> str:
    # A node may echo the raw transaction back; long hex blobs are cut out, and
    # the whole reason is bounded so a huge error body cannot flood the audit log.
    return _HEX_BLOB.sub("0x…", text)[:300]
