"""EVM stories above the adapter and the simulators: scenario C, the rig, the demos.

``scenarios`` builds AG-384 scenario C from the adapter's operations, ``rig``
wires an in-process chain, the DeFi contracts, a private relay and a wallet
together, and ``demos`` are the ``reversa demo evm-*`` scenarios. The adapter
(``reversa.adapters.evm``) imports none of this, nor any simulator.
"""
