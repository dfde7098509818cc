"""What the EVM operations declare they touch: allowances and token positions.

Two resource kinds (see :mod:`reversa.core.resources`):

- :data:`ALLOWANCE` (``evm.allowance``), id ``<token>:<owner>:<spender>``: what
  a spender may move out of the owner's balance. An approval *produces* it; a
  swap or deposit that relies on an earlier approval *consumes* it; one that
  grants exactly what it spends in the same step only *touches* it (held, never
  linked: nobody else can use that grant).
- :data:`POSITION` (``evm.position``), id ``<token>:<holder>``: a holder's
  balance of a token. A swap consumes its ``token_in`` and produces into its
  ``token_out``; a vault deposit consumes the asset and produces into the
  vault's shares (the vault is the shares' token).

Addresses are lower-cased, so a checksummed and a plain spelling of one
address name the same resource. So a saga that deposits the tokens another
saga's swap bought is linked to it, and while either is rolling back or
escalated the other's steps on those tokens wait or fail naming it.
"""

from __future__ import annotations

from reversa.core.resources import Resource, Role

__all__ = ["ALLOWANCE", "POSITION", "allowance", "position"]

ALLOWANCE = "evm.allowance"
"""Resource kind of an ERC-20 allowance (id ``token:owner:spender``)."""
POSITION = "evm.position"
"""Resource kind of a holder's token balance (id ``token:holder``)."""


def allowance(token: object, owner: object, spender: object, role: Role) -> Resource:
    """The allowance ``owner`` gave ``spender`` on ``token``, used in ``role``."""
    return Resource(ALLOWANCE, f"{_addr(token)}:{_addr(owner)}:{_addr(spender)}", role)


def position(token: object, holder: object, role: Role) -> Resource:
    """``holder``'s balance of ``token``, used in ``role``."""
    return Resource(POSITION, f"{_addr(token)}:{_addr(holder)}", role)


def _addr(value: object) -> str:
    return str(value).lower()
