"""``reversa worker --trace``: the worker's sagas as spans, through the process' provider."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.core.clirun import cli

GOVAPP = Path(__file__).parents[1] / "core" / "govapp.py"

# The operator's --app module: the workflow's code, and the process' tracer provider with
# an exporter writing each span as a JSON line.
TRACEAPP = '''
import json
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from govflows import registry, services


class ToFile(SpanExporter):
    def export(self, spans):
        with open("spans.jsonl", "a") as out:
            for s in spans:
                out.write(json.dumps({
                    "name": s.name, "id": s.context.span_id,
                    "parent": s.parent.span_id if s.parent is not None else None,
                    "attributes": dict(s.attributes or {})}) + "\\n")
        return SpanExportResult.SUCCESS


provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(ToFile()))
trace.set_tracer_provider(provider)
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(GOVAPP, tmp_path / "govflows.py")
    (tmp_path / "traceapp.py").write_text(TRACEAPP)
    return tmp_path


def _approved_saga(project: Path, db: str) -> str:
    """A saga held for approval, then approved: a worker's to run."""
    saga_id, approval = subprocess.run(
        [sys.executable, "govflows.py", db, "submit"], cwd=project, capture_output=True,
        text=True, timeout=120, check=True).stdout.split()
    ok = cli("approvals", "approve", approval, "--by", "user:alice", "--db", db, cwd=project)
    assert ok.returncode == 0, ok.stderr
    return saga_id


def test_a_tracing_worker_sends_a_span_per_saga_and_step(project: Path, db_url: str) -> None:
    saga_id = _approved_saga(project, db_url)
    worker = cli("worker", "--once", "--trace", "--db", db_url, "--app", "traceapp:registry",
                 "--services", "govflows:services", cwd=project)
    assert worker.returncode == 0, worker.stderr
    assert "no OpenTelemetry tracer provider" not in worker.stderr
    spans = [json.loads(line) for line in (project / "spans.jsonl").read_text().splitlines()]
    (saga,) = [s for s in spans if s["name"] == "reversa.saga order"]
    assert saga["attributes"]["reversa.saga_id"] == saga_id
    assert saga["attributes"]["reversa.status"] == "completed"
    steps = [s for s in spans if s is not saga]
    assert [s["name"] for s in steps] == ["reversa.step pay", "reversa.step ship"]
    assert all(s["parent"] == saga["id"] and s["attributes"]["reversa.outcome"] == "ok"
               for s in steps)


def test_tracing_without_a_provider_says_so_and_still_works(project: Path, db_url: str) -> None:
    _approved_saga(project, db_url)
    worker = cli("worker", "--once", "--trace", "--db", db_url, "--app", "govflows:registry",
                 "--services", "govflows:services", cwd=project)
    assert worker.returncode == 0, worker.stderr
    assert "--trace: no OpenTelemetry tracer provider is set up" in worker.stderr
    assert not (project / "spans.jsonl").exists()
