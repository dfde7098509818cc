"""A small DeFi world on any simulated chain: three tokens, two AMM pools, a router, a vault.

The layout is the one of AG-384 scenario C: token A is swapped for B on pool 1
(deep), B for C on pool 2 (thin unless told otherwise), C is deposited in the
vault. Token A requires zero-before-nonzero approvals, as USDT does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from .compiler import load_contract

__all__ = ["UNIT", "DefiWorld", "SetupChain", "deploy_defi_world"]

UNIT = 10**18
"""One whole token in base units (every simulated token has 18 decimals)."""


class SetupChain(Protocol):
    """What deploying and driving the world needs from a chain simulator."""

    w3: Any
    accounts: list[str]

    def transact(self, call: Any, sender: str) -> Any:
        """Send a contract call from an unlocked account, wait for it, return the receipt."""
        ...


@dataclass
class DefiWorld:
    """Deployed contracts and the accounts that play in them.

    Attributes:
        chain: The simulator the contracts live on.
        tokens: Token contracts by symbol (``"TKA"``, ``"TKB"``, ``"TKC"``).
        pool1: The A/B pool (deep).
        pool2: The B/C pool (thin unless ``pool2_liquidity`` was raised).
        router: The swap router.
        vault: The yield vault holding token C.
        deployer: Account that deployed everything and owns the tokens.
        whale: An account holding plenty of every token, to move markets.
    """

    chain: SetupChain
    tokens: dict[str, Any]
    pool1: Any
    pool2: Any
    router: Any
    vault: Any
    deployer: str
    whale: str

    @property
    def w3(self) -> Any:
        """The chain's web3 client."""
        return self.chain.w3

    def address(self, name: str) -> str:
        """Checksummed address of a token symbol or ``pool1``/``pool2``/``router``/``vault``."""
        if name in self.tokens:
            return str(self.tokens[name].address)
        return str(getattr(self, name).address)

    def symbol_of(self, address: str) -> str:
        """The symbol of the token at ``address``."""
        for symbol, contract in self.tokens.items():
            if contract.address.lower() == address.lower():
                return symbol
        raise KeyError(address)

    def balance(self, symbol: str, owner: str) -> int:
        """Token balance in base units."""
        return int(self.tokens[symbol].functions.balanceOf(owner).call())

    def allowance(self, symbol: str, owner: str, spender: str) -> int:
        """Allowance in base units."""
        return int(self.tokens[symbol].functions.allowance(owner, spender).call())

    def shares(self, owner: str) -> int:
        """Vault shares held by ``owner``."""
        return int(self.vault.functions.balanceOf(owner).call())

    def reserves(self, pool: str) -> tuple[int, int, str, str]:
        """``(reserve0, reserve1, token0, token1)`` of ``pool1`` or ``pool2``."""
        contract = getattr(self, pool)
        return (
            int(contract.functions.reserve0().call()),
            int(contract.functions.reserve1().call()),
            str(contract.functions.token0().call()),
            str(contract.functions.token1().call()),
        )

    def mint(self, symbol: str, to: str, amount: int) -> None:
        """Mint ``amount`` of a token to ``to``."""
        self.chain.transact(self.tokens[symbol].functions.mint(to, amount), self.deployer)

    def trade(self, pool: str, symbol_in: str, amount_in: int, *, sender: str | None = None) -> int:
        """An outside trader swaps on ``pool`` (moving its price); returns the output.

        Args:
            pool: ``"pool1"`` or ``"pool2"``.
            symbol_in: The token sold.
            amount_in: Amount sold, base units.
            sender: Trading account (default: the whale).
        """
        trader = sender or self.whale
        token = self.tokens[symbol_in]
        # Asked of the chain, not remembered: a reverted snapshot forgets approvals.
        if self.allowance(symbol_in, trader, self.router.address) < amount_in:
            self.chain.transact(token.functions.approve(self.router.address, 2**255), trader)
        pool_contract = getattr(self, pool)
        before = self.router.functions.quote(pool_contract.address, token.address, amount_in).call()
        self.chain.transact(
            self.router.functions.swap_exact_in(
                pool_contract.address, token.address, amount_in, 0, 2**63
            ),
            trader,
        )
        return int(before)


def _deploy(chain: SetupChain, name: str, sender: str, *args: Any) -> Any:
    artifact = load_contract(name)
    factory = chain.w3.eth.contract(abi=list(artifact.abi), bytecode=artifact.bytecode)
    receipt = chain.transact(factory.constructor(*args), sender)
    return chain.w3.eth.contract(address=receipt["contractAddress"], abi=list(artifact.abi))


def deploy_defi_world(
    chain: SetupChain,
    *,
    pool1_liquidity: int = 1_000_000 * UNIT,
    pool2_liquidity: int = 1_000 * UNIT,
    whale_tokens: int = 10_000_000 * UNIT,
) -> DefiWorld:
    """Deploy tokens A/B/C, pools A/B and B/C, the router and a vault for C.

    Both pools start at a 1:1 price. Needs the chain to mine setup transactions
    (automine on, or a chain whose ``transact`` mines).

    Args:
        chain: The simulator (:class:`~reversa.simulators.evm.InProcessChain`
            or :class:`~reversa.simulators.evm.AnvilNode`).
        pool1_liquidity: Reserve of each token in pool 1, base units.
        pool2_liquidity: Reserve of each token in pool 2; the default is thin
            enough that a 10,000-token swap blows through any sane slippage bound.
        whale_tokens: Amount of each token minted to the whale account.
    """
    deployer, whale = chain.accounts[0], chain.accounts[1]
    tokens = {
        "TKA": _deploy(chain, "Token", deployer, "Token A", "TKA", 18, True),
        "TKB": _deploy(chain, "Token", deployer, "Token B", "TKB", 18, False),
        "TKC": _deploy(chain, "Token", deployer, "Token C", "TKC", 18, False),
    }
    pool1 = _deploy(chain, "Pool", deployer, tokens["TKA"].address, tokens["TKB"].address)
    pool2 = _deploy(chain, "Pool", deployer, tokens["TKB"].address, tokens["TKC"].address)
    router = _deploy(chain, "Router", deployer)
    vault = _deploy(chain, "Vault", deployer, tokens["TKC"].address)
    world = DefiWorld(chain, tokens, pool1, pool2, router, vault, deployer, whale)
    for pool, (left, right), amount in (
        (pool1, ("TKA", "TKB"), pool1_liquidity),
        (pool2, ("TKB", "TKC"), pool2_liquidity),
    ):
        world.mint(left, pool.address, amount)
        world.mint(right, pool.address, amount)
        chain.transact(pool.functions.sync(), deployer)
    for symbol in tokens:
        world.mint(symbol, whale, whale_tokens)
    return world
