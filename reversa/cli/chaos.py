"""``reversa chaos``: seeded fault schedules, Reversa's guarantees checked at the services."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from .common import ExitCode, console, emit_json, fail

SEEDS_HELP = "How many schedules to run: seeds START .. START+N-1."
SEED_HELP = ("Replay one seed exactly: its schedule in words, how every saga ended, what broke; "
             "a failing seed is shrunk to the faults that matter.")


def register(app: typer.Typer) -> None:
    """Attach ``reversa chaos``."""

    @app.command("chaos")
    def chaos(
        seeds: Annotated[int, typer.Option("--seeds", help=SEEDS_HELP)] = 200,
        start: Annotated[int, typer.Option("--start", help="First seed.")] = 0,
        seed: Annotated[int | None, typer.Option("--seed", help=SEED_HELP)] = None,
        pack: Annotated[list[str] | None, typer.Option(
            "--pack", help="Workflow pack to draw sagas from (repeatable; default: all).")]
        = None,
        shrink: Annotated[bool, typer.Option(
            "--shrink/--no-shrink", help="Shrink the first failing schedule.")] = True,
        json_out: Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
        = False,
    ) -> None:
        """Run seeded schedules of crashes, pauses, late effects and database faults.

        Each seed fixes a whole run: owners, workers and services on one virtual clock,
        with the faults it draws. After each run every saga must have ended completed,
        compensated, escalated or resolved, with no effect standing in a compensated
        saga, no effect undone twice, every escalation reported in full and reachable,
        no worker dead, and every audit chain verified. Exits 1 on any violation.
        """
        from ..testing.chaos import load_packs

        if seeds < 1:
            fail(f"--seeds {seeds}: run at least one schedule (e.g. --seeds 1000)")
        if start < 0 or (seed is not None and seed < 0):
            fail("seeds are non-negative integers; use --start 0 or --seed 42")
        try:
            packs = load_packs(pack)
        except KeyError as exc:
            fail(str(exc.args[0]))
        if seed is not None:
            _one(seed, packs, shrink=shrink, json_out=json_out)
        else:
            _many(start, seeds, packs, shrink=shrink, json_out=json_out)


def _one(seed: int, packs: dict[str, Any], *, shrink: bool, json_out: bool) -> None:
    from ..testing.chaos import replay
    from ..testing.chaos import shrink as shrink_run

    result = replay(seed, packs)
    smallest = shrink_run(result, packs) if shrink and not result.ok else None
    if json_out:
        emit_json({
            "seed": seed, "ok": result.ok, "schedule": result.describe(),
            "violations": [str(v) for v in result.violations],
            "ended": dict(sorted(result.ends.items())), "digest": result.digest,
            "shrunk": smallest.describe() if smallest is not None else None,
        })
    else:
        for line in result.describe():
            console.print(line, markup=False, highlight=False)
        if smallest is not None:
            console.print(f"shrunk to {len(smallest.schedule.faults)} of "
                          f"{len(result.schedule.faults)} fault(s), same violation:",
                          markup=False)
            for line in smallest.describe():
                console.print(line, markup=False, highlight=False)
    if not result.ok:
        raise typer.Exit(int(ExitCode.CHECK_FAILED))


def _many(start: int, count: int, packs: dict[str, Any], *, shrink: bool,
          json_out: bool) -> None:
    from ..testing.chaos import run_seeds
    from ..testing.chaos import shrink as shrink_run

    progress = _progress(count) if not json_out and sys.stderr.isatty() else None
    summary = run_seeds(range(start, start + count), packs,
                        progress=progress.advance if progress is not None else None)
    if progress is not None:
        progress.close()
    first = summary.failing[0] if summary.failing else None
    smallest = shrink_run(first, packs) if first is not None and shrink else None
    if json_out:
        data = summary.to_dict()
        data["seeds"] = [start, start + count - 1]
        if first is not None:
            data["first_failure"] = {
                "seed": first.schedule.seed, "schedule": first.describe(),
                "shrunk": smallest.describe() if smallest is not None else None,
                "replay": _replay_command(first.schedule.seed, packs)}
        emit_json(data)
    else:
        console.print(f"{summary.schedules} schedule(s) (seeds {start}..{start + count - 1}) "
                      f"in {summary.seconds:.1f}s, {summary.per_second:.1f}/s: "
                      f"{summary.violations} violation(s)", markup=False)
        ends = ", ".join(f"{n} {s}" for s, n in sorted(summary.ends.items()))
        console.print(f"sagas ended: {ends}", markup=False)
        if first is not None:
            seeds = ", ".join(str(r.schedule.seed) for r in summary.failing[:20])
            console.print(f"failing seeds: {seeds}; replay one with "
                          f"`{_replay_command(first.schedule.seed, packs)}`", markup=False)
            for line in (smallest or first).describe():
                console.print(line, markup=False, highlight=False)
    if summary.violations:
        raise typer.Exit(int(ExitCode.CHECK_FAILED))


def _replay_command(seed: int, packs: dict[str, Any]) -> str:
    # A seed stands for a schedule drawn from these packs' workflows: replaying it
    # with another set of packs would run another schedule.
    from ..testing.chaos.packs import pack_names

    flags = "" if sorted(packs) == sorted(pack_names()) else "".join(
        f" --pack {name}" for name in sorted(packs))
    return f"reversa chaos --seed {seed}{flags}"


class _Progress:
    def __init__(self, total: int) -> None:
        from rich.progress import Progress

        from .common import err_console

        self._bar = Progress(console=err_console, transient=True)
        self._task = self._bar.add_task("schedules", total=total)
        self._bar.start()

    def advance(self, _result: Any) -> None:
        self._bar.advance(self._task)

    def close(self) -> None:
        self._bar.stop()


def _progress(total: int) -> _Progress:
    return _Progress(total)
