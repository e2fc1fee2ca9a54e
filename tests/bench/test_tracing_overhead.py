"""The tracing benchmark runs end to end and reports both modes (a few requests, no figures)."""

from __future__ import annotations

import pytest

from app.core import tracing
from bench import tracing_overhead


def test_the_tracing_benchmark_measures_both_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing_overhead, "REQUESTS", 8)
    monkeypatch.setattr(tracing_overhead, "WARM_UP", 4)
    monkeypatch.setattr(tracing_overhead, "TIMED_CALLS", 100)
    result = tracing_overhead.run()
    assert result["requests_per_mode"] == 4
    for kind in tracing_overhead.KINDS:
        assert result[f"{kind}_p50_on_ms"] > 0
        assert result[f"{kind}_p50_off_ms"] > 0
    assert not tracing.enabled()  # the app's shutdown turned tracing off again
    (row,) = tracing_overhead.rows(result)
    assert "goal: added p50 <= 0.2 ms" in row[3]
