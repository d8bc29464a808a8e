"""Percentiles, without numpy: nearest-rank on the sorted samples."""

from __future__ import annotations

import math
import statistics

__all__ = ["percentile", "summary_ms"]


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        raise ValueError("no samples")
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summary_ms(samples_ns: list[int]) -> dict[str, float]:
    """p50, p90, p99, max and the count, in milliseconds."""
    values = sorted(v / 1e6 for v in samples_ns)
    return {
        "count": len(values),
        "p50": statistics.median(values),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": values[-1],
    }
