"""Every span recorded with the OpenTelemetry SDK, then dropped: what tracing costs.

``reversa bench --trace``, ``bench/tracing.py`` and ``bench/instructions.py --traced``
share this set-up, so the three measure the same thing: an SDK ``TracerProvider``
with a batch processor whose exporter counts the spans and keeps none, and a
``TracingObserver`` that reaches it straight (``"processor"``) or through the
provider's tracer (``"tracer"``). Needs ``opentelemetry-sdk``.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from ..observability.otel import TracingObserver

__all__ = ["RecordedSpans"]


class _Counted(SpanExporter):
    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Any) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


class RecordedSpans:
    """An SDK provider recording every span, and the observer that feeds it.

    Args:
        via: ``"processor"`` (``TracingObserver(processor=...)``) or ``"tracer"``.
    """

    def __init__(self, via: str) -> None:
        if via not in ("processor", "tracer"):
            raise ValueError(f"via={via!r}; give 'processor' or 'tracer'")
        self._exporter = _Counted()
        self.provider = TracerProvider()
        processor = BatchSpanProcessor(self._exporter)
        self.provider.add_span_processor(processor)
        self.observer = (TracingObserver(processor=processor, resource=self.provider.resource)
                         if via == "processor" else
                         TracingObserver(self.provider.get_tracer("reversa.bench")))

    def shutdown(self) -> int:
        """Build and export what is left; the number of spans the exporter received."""
        self.observer.close()
        self.provider.shutdown()
        return self._exporter.spans
