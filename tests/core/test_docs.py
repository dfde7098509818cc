"""Every runnable code block in README.md and docs/*.md runs as written.

Each fenced block names its language. ``python`` blocks run as a script in an empty
directory; ``bash`` blocks run from the root of the checkout (as the README's "from a
clone of this repository" says), with the running interpreter's ``bin`` first on PATH
so ``reversa`` and ``python`` are the ones under test. Other languages (``text`` for
output, ...) are not run.

HTML comments on the lines right above a fence (invisible when rendered) qualify it:

- ``<!-- fragment: why -->``: not a complete program (it wires in your own node, keys,
  ledger client...). A python fragment must still parse and its imports must resolve,
  so a renamed API is caught; a bash fragment must parse.
- ``<!-- not-run: why -->``: complete, but run elsewhere (when the reason names
  ``.ci/run``, every line of the block must appear in ``.ci/run``) or too heavy for the
  suite (the benchmark harnesses: minutes of load on two cores).

A python block whose last line is ``print(...)  # text`` must print ``text`` last.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from reversa.cli.common import ExitCode

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN = {"python", "bash"}
SHOWN = {"text", "json", "toml", "yaml", "sql", "vyper"}
FENCE = re.compile(r"^```(\S*)\s*$")
MARKER = re.compile(r"^<!--\s*(fragment|not-run):\s*(\S.*?)\s*-->\s*$")
EXPECTED = re.compile(r"^print\(.*\)\s+#\s*(?P<out>\S.*)$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    marks: tuple[tuple[str, str], ...]

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    def mark(self, kind: str) -> str | None:
        return next((why for k, why in self.marks if k == kind), None)


def parse(path: Path) -> tuple[list[Block], list[str]]:
    """The fenced blocks of a Markdown file, and problems with its markers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    problems: list[str] = []
    used: set[int] = set()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        if end is None:
            problems.append(f"{path.name}:{i + 1}: fence never closed")
            break
        marks: list[tuple[str, str]] = []
        k = i - 1
        while k >= 0 and (m := MARKER.match(lines[k])):
            marks.insert(0, (m[1], m[2]))
            used.add(k)
            k -= 1
        blocks.append(Block(path, i + 1, opening[1], "\n".join(lines[i + 1:end]) + "\n",
                            tuple(marks)))
        i = end + 1
    for n, text in enumerate(lines):
        if text.lstrip().startswith("<!--") and MARKER.match(text) and n not in used:
            problems.append(f"{path.name}:{n + 1}: marker not directly above a fence")
    return blocks, problems


ALL = [b for p in DOCS for b in parse(p)[0]]
RUNNABLE = [b for b in ALL if b.lang in RUN]


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REVERSA_DB"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_every_block_says_what_it_is() -> None:
    problems = [problem for p in DOCS for problem in parse(p)[1]]
    problems += [f"{b.where}: fence without a language (use one of {sorted(RUN | SHOWN)})"
                 for b in ALL if b.lang not in RUN | SHOWN]
    problems += [f"{b.where}: {kind!r} marker on a {b.lang} block, which is never run"
                 for b in ALL if b.lang not in RUN for kind, _ in b.marks]
    assert not problems, "\n".join(problems)


def test_the_marker_parser_sees_markers() -> None:
    # The runs below are only trustworthy if markers and fences are found at all.
    assert any(b.mark("fragment") for b in RUNNABLE)
    assert any(b.mark("not-run") for b in RUNNABLE)
    assert any(b.lang == "python" and not b.marks for b in RUNNABLE)


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.where)
def test_block_runs_as_written(block: Block, tmp_path: Path) -> None:
    not_run = block.mark("not-run")
    if not_run is not None:
        if ".ci/run" in not_run:
            script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
            missing = [ln for ln in block.code.splitlines() if ln.strip() and ln not in script]
            assert not missing, f"{block.where} says .ci/run runs it, but .ci/run lacks {missing}"
            return
        pytest.skip(f"{block.where}: {not_run}")
    if block.lang == "python":
        _run_python(block, tmp_path)
    else:
        _run_bash(block, tmp_path)


def _failure(block: Block, proc: subprocess.CompletedProcess[str]) -> str:
    return f"{block.where} failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"


def _run_python(block: Block, tmp: Path) -> None:
    tree = ast.parse(block.code, filename=block.where)
    source = block.code
    if block.mark("fragment") is not None:
        imports = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        assert imports, f"{block.where}: a fragment with nothing to check; is it a program?"
        source = ast.unparse(ast.Module(body=imports, type_ignores=[]))
    script = tmp / "block.py"
    script.write_text(source, encoding="utf-8")
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp, env=_env(tmp),
                          capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, _failure(block, proc)
    last = block.code.rstrip().splitlines()[-1]
    expected = EXPECTED.match(last)
    if expected and block.mark("fragment") is None:
        printed = proc.stdout.rstrip().splitlines()
        assert printed, f"{block.where} printed nothing"
        assert printed[-1] == expected["out"], f"{block.where} printed {printed[-1]!r}"


def _run_bash(block: Block, tmp: Path) -> None:
    env = {**_env(tmp), "REVERSA_DB": str(tmp / "reversa.db")}  # never write into the clone
    args = ["bash", "-n", "-c", block.code] if block.mark("fragment") is not None else [
        "bash", "-e", "-u", "-o", "pipefail", "-c", block.code]
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, _failure(block, proc)


def test_readme_saga_matches_the_quickstart_example() -> None:
    # The README promises examples/core/quickstart.py is the same program, typed.
    saga = next(b for b in ALL if b.path.name == "README.md" and b.lang == "python")
    names = re.compile(r'@registry\.\w+\("([^"]+)"\)')
    workflow = re.compile(r'Saga\.chain\(\s*"([^"]+)"')
    example = (ROOT / "examples" / "core" / "quickstart.py").read_text(encoding="utf-8")
    assert set(names.findall(saga.code)) <= set(names.findall(example))
    assert workflow.findall(saga.code) == workflow.findall(example)


def test_readme_documents_every_exit_code() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = {int(m) for m in re.findall(r"^\|\s*`?(\d+)`?\s*\|", section, re.M)}
    assert documented == {int(code) for code in ExitCode}
