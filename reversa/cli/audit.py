"""``reversa audit ...``: keys, verification, proofs and exports of the audit record."""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from ..core.audit import AuditReport
from ..core.errors import ReversaError
from ..core.inspector import Inspector
from .common import DB_HELP, ExitCode, console, emit_json, exit_code_for, fail, open_store

__all__ = ["apply_root_options", "register"]

audit_app = typer.Typer(no_args_is_help=True, help="The tamper-evident, signed audit record.")

Db = Annotated[str | None, typer.Option("--db", help=DB_HELP)]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
PubKeys = Annotated[list[Path] | None, typer.Option(
    "--pubkey", help="Public key file (reversa-audit.pub); repeat for rotated keys.")]
WitnessDir = Annotated[Path | None, typer.Option(
    "--witness", help="The witness directory holding the signed checkpoints.")]


def register(app: typer.Typer) -> None:
    """Attach ``reversa audit``."""
    app.add_typer(audit_app, name="audit")


def apply_root_options(signing_key: str | None, witness: str | None) -> None:
    """``reversa --signing-key K --witness DIR <command>``: the same as the variables.

    Every writing command opens its store from the environment, so the options
    simply set ``REVERSA_SIGNING_KEY`` / ``REVERSA_WITNESS_DIR`` for this process.
    """
    if signing_key:
        os.environ["REVERSA_SIGNING_KEY"] = signing_key
    if witness:
        os.environ["REVERSA_WITNESS_DIR"] = witness


def _guard(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except ReversaError as exc:
        fail(exc.message, exit_code_for(exc))


def _verifiers(paths: list[Path] | None) -> list[Any] | None:
    if not paths:
        return None
    from ..core.evidence.signing import load_verifier

    return [_guard(load_verifier, p) for p in paths]


def _print(report: AuditReport, json_out: bool, where: str) -> None:
    if json_out:
        emit_json({"ok": report.ok, "sagas": report.sagas, "entries": report.entries,
                   "problems": [asdict(p) for p in report.problems],
                   "checked": report.checked, "notes": report.notes})
    elif report.ok:
        console.print(f"[green]audit record verified[/]: {report.entries} entries in "
                      f"{report.sagas} saga chain(s), {where}")
        for item in report.checked:
            console.print(f"  checked: {escape(item)}")
        for note in report.notes:
            console.print(f"  note: {escape(note)}")
    else:
        for p in report.problems:
            who = f"saga {p.saga_id}" if p.saga_id else "database"
            console.print(f"[red]TAMPERED[/] {escape(f'[{p.kind}] {who}: {p.message}')}")
        for note in report.notes:
            console.print(f"  note: {escape(note)}")
    raise typer.Exit(ExitCode.OK if report.ok else ExitCode.CHECK_FAILED)


@audit_app.command("verify")
def audit_verify(
    db: Db = None,
    json_out: Json = False,
    saga: Annotated[str | None, typer.Option(help="Verify one saga only.")] = None,
    pubkey: PubKeys = None,
    witness: WitnessDir = None,
    chain: Annotated[str | None, typer.Option(
        help="JSON-RPC URL of a chain holding the checkpoint anchor.")] = None,
    anchor_contract: Annotated[str | None, typer.Option(
        help="Address of the anchor contract (default $REVERSA_ANCHOR_CONTRACT).")] = None,
) -> None:
    """Verify chains, tables, signatures and checkpoints; exit 1 naming each problem."""
    verifiers = _verifiers(pubkey)
    witnesses: list[Any] = []
    if witness is not None:
        if not witness.is_dir():
            fail(f"witness directory {witness} does not exist; pass the directory given to "
                 "REVERSA_WITNESS_DIR")
        from ..core.evidence.witness import DirWitness

        witnesses.append(DirWitness(witness))
    if chain is not None:
        address = anchor_contract or os.environ.get("REVERSA_ANCHOR_CONTRACT")
        if not address:
            fail("--chain needs the anchor contract's address: pass --anchor-contract ADDR or "
                 "set REVERSA_ANCHOR_CONTRACT")
        witnesses.append(_guard(_chain_witness, chain, address))
    # Read-only: verifying never creates, migrates or writes anything.
    store = open_store(db, read_only=True)
    if saga is not None:
        saga = _guard(Inspector(store).resolve_id, saga)
    report = _guard(store.verify_audit, saga, verifiers=verifiers, witnesses=witnesses)
    _print(report, json_out, store.url)


def _chain_witness(url: str, address: str) -> Any:
    try:
        from ..adapters.evm.anchor import ChainWitness
    except ImportError as exc:
        from ..core.errors import ConfigError

        raise ConfigError(f"--chain needs the EVM extra: pip install 'reversa[evm]' "
                          f"({exc})") from None
    return ChainWitness.connect(url, address)


@audit_app.command("keygen")
def audit_keygen(
    out: Annotated[Path, typer.Option("--out", help="Directory for the new key files.")],
    hmac_key: Annotated[bool, typer.Option(
        "--hmac", help="An HMAC-SHA256 key instead of Ed25519 (verifying needs the secret).")]
    = False,
    json_out: Json = False,
) -> None:
    """Create a signing key (0600) and its public key; existing files are never replaced."""
    from ..core.evidence.signing import generate_keys

    written = _guard(generate_keys, out, hmac_key=hmac_key)
    if json_out:
        emit_json({k: str(v) for k, v in written.items()})
        return
    console.print(f"key {written['key_id']}")
    console.print(f"  private: {written['private']} (mode 0600: keep it off the database "
                  "host's backups; point REVERSA_SIGNING_KEY at it)")
    if "public" in written:
        console.print(f"  public:  {written['public']} (give it to auditors: "
                      "`reversa audit verify --pubkey`)")


@audit_app.command("checkpoint")
def audit_checkpoint(db: Db = None, json_out: Json = False) -> None:
    """Seal every changed saga head into a signed checkpoint now (needs the key and witness)."""
    store = open_store(db)
    made = _guard(store.checkpoint)
    if json_out:
        emit_json(None if made is None else asdict(made))
        return
    if made is None:
        console.print("no saga head changed since the last checkpoint")
    else:
        console.print(f"checkpoint #{made.number}: {made.size} sealed heads, root "
                      f"{made.root[:16]}…")


@audit_app.command("proof")
def audit_proof(saga_id: str, db: Db = None, json_out: Json = False) -> None:
    """Inclusion proof of a saga's sealed head in the latest signed checkpoint."""
    from ..core.evidence.checkpoints import prove

    store = open_store(db, read_only=True)
    saga_id = _guard(Inspector(store).resolve_id, saga_id)
    with store.engine.connect() as conn:
        proof = _guard(prove, conn, saga_id)
    if proof is None:
        fail(f"saga {saga_id} is in no checkpoint yet; checkpoints are taken when sagas end "
             "(with REVERSA_WITNESS_DIR set) or by `reversa audit checkpoint`",
             ExitCode.CHECK_FAILED)
    data = proof.to_dict()
    if json_out:
        emit_json(data)
        return
    leaf, cp = data["leaf"], data["checkpoint"]
    console.print(f"saga {saga_id}: entry #{leaf['seq']} (head {leaf['head'][:16]}…) is leaf "
                  f"{leaf['index']} of checkpoint #{cp['number']} ({cp['size']} leaves, root "
                  f"{cp['root'][:16]}…, signed by {cp['key']})")
    for index, node in enumerate(data["path"]):
        console.print(f"  path[{index}] {node}")


@audit_app.command("export")
def audit_export(
    since: Annotated[str, typer.Option(
        help="Sagas updated since: ISO date/time (2024-05-01, 2024-05-01T12:00Z), epoch "
             "seconds, or an age (15m, 2h, 7d).")],
    out: Annotated[Path, typer.Option("--out", help="The JSONL file to create.")],
    db: Db = None,
) -> None:
    """Export sagas with their chains and proofs as signed JSON Lines (checked offline)."""
    from ..core.evidence.export import export

    start = _since(since)
    store = open_store(db, read_only=True)
    signer = store.audit.signer
    if signer is None:
        fail("an export is signed as a whole: set REVERSA_SIGNING_KEY (or --signing-key) to "
             "the audit key")
    count = _guard(export, store, out, since=start, signer=signer)
    console.print(f"exported {count} saga(s) to {out}; check it with `reversa audit "
                  f"check-export {out} --pubkey reversa-audit.pub`")


@audit_app.command("check-export")
def audit_check_export(
    file: Annotated[Path, typer.Argument(help="The export to verify.")],
    pubkey: PubKeys = None,
    witness: WitnessDir = None,
    json_out: Json = False,
) -> None:
    """Verify an export offline, without the database; exit 1 naming each problem."""
    from ..core.evidence.export import check_export

    verifiers = _verifiers(pubkey)
    if verifiers is None:
        fail("check-export needs the public key: pass --pubkey reversa-audit.pub")
    witnesses: list[Any] = []
    if witness is not None:
        from ..core.evidence.witness import DirWitness

        witnesses.append(DirWitness(witness))
    report = _guard(check_export, file, verifiers, witnesses=witnesses)
    _print(report, json_out, str(file))


@audit_app.command("anchor")
def audit_anchor(
    chain: Annotated[str, typer.Option(help="JSON-RPC URL of the chain.")],
    sender: Annotated[str | None, typer.Option(
        "--from", help="Unlocked account to deploy from (default: the node's first), or "
                       "key:PATH of a file holding an account key in hex.")] = None,
) -> None:
    """Deploy the checkpoint anchor contract; prints the address for REVERSA_ANCHOR_CONTRACT."""
    witness = _guard(_deploy, chain, sender)
    console.print(f"anchor contract deployed at {witness.address}")
    console.print(f"  export REVERSA_ANCHOR_URL={chain} REVERSA_ANCHOR_CONTRACT={witness.address}")


def _deploy(url: str, sender: str | None) -> Any:
    try:
        from web3 import HTTPProvider, Web3

        from ..adapters.evm.anchor import ChainWitness, parse_sender
    except ImportError as exc:
        from ..core.errors import ConfigError

        raise ConfigError(f"anchoring needs the EVM extra: pip install 'reversa[evm]' "
                          f"({exc})") from None
    w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 30}))
    account = parse_sender(sender)
    try:
        return ChainWitness.deploy(w3, sender=account)
    except ReversaError:
        raise
    except Exception as exc:
        from ..core.errors import ConfigError

        raise ConfigError(f"cannot deploy the anchor on {url} ({type(exc).__name__}); is the "
                          "node running and the account funded?") from None


def _since(text: str) -> float:
    value = text.strip()
    try:
        return float(value)
    except ValueError:
        pass
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[-1:] in units:
        try:
            return time.time() - float(value[:-1]) * units[value[-1]]
        except ValueError:
            pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"--since {text!r}: use an ISO date or time (2024-05-01, 2024-05-01T12:00Z), "
            "epoch seconds, or an age such as 15m, 2h, 7d") from None
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
