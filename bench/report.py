"""The results as rows (one figure each, with its ratio to the floor and its target), a
plain-text table of them, and the JSON document the run writes."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Row", "machine", "rows_for", "table"]


@dataclass(frozen=True, slots=True)
class Row:
    backend: str
    scenario: str
    metric: str
    value: float
    unit: str
    ratio: float | None = None  # value / floor
    floor: str | None = None  # what the ratio is taken against
    target: str | None = None
    met: bool | None = None


def _get(data: dict, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


# (scenario, metric path, unit, floor key, floor label, target as (op, number))
_FIGURES = [
    ("latency", "host_to_member.p50", "ms", "tls_round_trip_ms.p50", "TLS round trip p50", ("<=", 2.0)),
    ("latency", "host_to_member.p90", "ms", "tls_round_trip_ms.p50", "TLS round trip p50", None),
    ("latency", "host_to_member.p99", "ms", "tls_round_trip_ms.p50", "TLS round trip p50", ("<=", 10.0)),
    ("latency", "host_to_member.max", "ms", "tls_round_trip_ms.p50", "TLS round trip p50", None),
    ("latency", "member_to_member.p50", "ms", "tls_round_trip_ms.p50", "TLS round trip p50", None),
    ("latency", "member_to_member.p90", "ms", "tls_round_trip_ms.p50", "TLS round trip p50", None),
    ("latency", "member_to_member.p99", "ms", "tls_round_trip_ms.p50", "TLS round trip p50", None),
    ("latency", "member_to_member.max", "ms", "tls_round_trip_ms.p50", "TLS round trip p50", None),
    ("throughput", "messages_per_s", "msg/s", "tls_requests_per_s", "TLS requests/s", (">=", 5000.0)),
    ("throughput", "accepted_per_s", "msg/s", "tls_requests_per_s", "TLS requests/s", None),
    ("throughput", "cpu_s_per_1000.sender_node", "CPU s/1k", "server_cpu_s_per_1000", "TLS server CPU s/1k", None),
    ("throughput", "cpu_s_per_1000.receiver_node", "CPU s/1k", "server_cpu_s_per_1000", "TLS server CPU s/1k", None),
    ("throughput", "cpu_s_per_1000.harness", "CPU s/1k", None, None, None),
    ("throughput", "latency_ms.p50", "ms", "tls_round_trip_ms.p50", "TLS round trip p50", None),
    ("catch_up", "events_per_s", "events/s", "ed25519_verify_per_s", "ed25519 verifies/s", (">=", 20000.0)),
    ("catch_up", "seconds_from_ready", "s", None, None, None),
    ("catch_up", "seconds_from_spawn", "s", None, None, None),
    ("catch_up", "member_cpu_s_per_1000", "CPU s/1k", "server_cpu_s_per_1000", "TLS server CPU s/1k", None),
    ("fanout", "messages_per_s", "msg/s", "tls_requests_per_s", "TLS requests/s", None),
    ("fanout", "last_node_latency_ms.p50", "ms", "tls_round_trip_ms.p50", "TLS round trip p50", None),
    ("fanout", "last_node_latency_ms.p99", "ms", "tls_round_trip_ms.p50", "TLS round trip p50", None),
    ("fanout", "host_cpu_s_per_1000", "CPU s/1k", "server_cpu_s_per_1000", "TLS server CPU s/1k", None),
    ("memory", "idle_rss_mb", "MB", "server_idle_rss_mb", "bare aiohttp RSS", ("<=", 80.0)),
    ("memory", "loaded_rss_mb", "MB", "server_idle_rss_mb", "bare aiohttp RSS", None),
]


def rows_for(backend: str, results: dict[str, dict], floor: dict) -> list[Row]:
    rows = []
    for scenario, path, unit, floor_key, floor_label, target in _FIGURES:
        value = _get(results.get(scenario, {}), path)
        if value is None:
            continue
        base = _get(floor, floor_key) if floor_key else None
        met = None
        if target is not None:
            op, bound = target
            met = value <= bound if op == "<=" else value >= bound
        rows.append(Row(backend, scenario, path, float(value), unit,
                        ratio=float(value) / base if base else None, floor=floor_label if base else None,
                        target=f"{target[0]} {target[1]:g}" if target else None, met=met))
    return rows


def floor_rows(floor: dict) -> list[Row]:
    figures = [("ed25519_sign_per_s", "/s"), ("ed25519_verify_per_s", "/s"), ("tls_round_trip_ms.p50", "ms"),
               ("tls_round_trip_ms.p99", "ms"), ("tls_requests_per_s", "req/s"),
               ("server_cpu_s_per_1000", "CPU s/1k"), ("server_idle_rss_mb", "MB")]
    return [Row("-", "floor", path, float(v), unit) for path, unit in figures if (v := _get(floor, path)) is not None]


def table(rows: list[Row]) -> str:
    header = ("backend", "scenario", "metric", "value", "unit", "x floor", "floor", "target", "")
    lines = [header]
    for r in rows:
        lines.append((r.backend, r.scenario, r.metric, _num(r.value), r.unit,
                      "" if r.ratio is None else _num(r.ratio), r.floor or "", r.target or "",
                      "" if r.met is None else ("ok" if r.met else "MISSED")))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=False)).rstrip() for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def _num(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def as_json(rows: list[Row]) -> list[dict]:
    return [asdict(r) for r in rows]


def machine() -> dict:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    mem_kb = 0
    try:
        with open("/proc/meminfo") as f:
            mem_kb = int(next(line.split()[1] for line in f if line.startswith("MemTotal")))
    except (OSError, StopIteration):
        pass
    return {
        "uname": " ".join(platform.uname()),
        "cpu_model": cpu,
        "cpus": os.cpu_count(),
        "memory_gb": round(mem_kb / 2**20, 1),
        "python": sys.version.split()[0],
        "load_average_at_start": os.getloadavg(),
    }
