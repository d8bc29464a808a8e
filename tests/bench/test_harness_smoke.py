"""The benchmark harness runs end to end in its quick mode: the floor and the latency scenario
with a few messages on SQLite, three node processes over TLS, and writes the JSON shape
bench/README.md documents."""

from __future__ import annotations

import json
import subprocess
import sys

from bench.nodes import REPO_ROOT


def test_quick_latency_run_writes_the_documented_json(tmp_path):
    out = tmp_path / "latest.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--backend", "sqlite", "--quick", "--only", "latency",
         "--latency-messages", "20", "--warmup-messages", "2", "--out", str(out)],
        check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "host_to_member.p50" in done.stdout  # the table was printed

    document = json.loads(out.read_text())
    assert document["quick"] is True and document["errors"] == {}
    assert {"uname", "cpu_model", "cpus", "python"} <= set(document["machine"])
    floor = document["floor"]
    assert floor["ed25519_sign_per_s"] > 0 and floor["ed25519_verify_per_s"] > 0
    assert floor["tls_round_trip_ms"]["p50"] > 0 and floor["tls_requests_per_s"] > 0
    latency = document["results"]["sqlite"]["latency"]
    for path in ("host_to_member", "member_to_member"):
        summary = latency[path]
        assert summary["count"] == 20
        assert 0 < summary["p50"] <= summary["p90"] <= summary["p99"] <= summary["max"]
    rows = [r for r in document["rows"] if r["scenario"] == "latency"]
    assert {r["metric"] for r in rows} >= {"host_to_member.p50", "host_to_member.p99", "member_to_member.p50"}
    for row in rows:
        assert row["backend"] == "sqlite" and row["ratio"] > 0 and row["floor"] == "TLS round trip p50"


def test_profile_summary_counts_inclusive_and_self_samples():
    from bench.profile_summary import summarize

    document = {
        "shared": {"frames": [{"name": "main", "file": "/x/cli.py", "line": 1},
                              {"name": "post", "file": "/x/api.py", "line": 2},
                              {"name": "execute", "file": "/x/db.py", "line": 3}]},
        "profiles": [{"samples": [[0, 1, 2], [0, 1], [0, 2], []], "weights": [3, 1, 2, 5]}],
    }
    total, inclusive, own = summarize(document)
    assert total == 6  # the empty stack counts for nothing
    assert inclusive["main (cli.py:1)"] == 6
    assert inclusive["post (api.py:2)"] == 4
    assert inclusive["execute (db.py:3)"] == 5
    assert own == {"execute (db.py:3)": 5, "post (api.py:2)": 1}


def test_quick_attack_run_measures_honest_latency_under_attack_and_the_attacker(tmp_path):
    out = tmp_path / "attacks.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.attacks", "--only", "slowloris", "--rounds", "1", "--seconds", "1",
         "--out", str(out)],
        check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "slowloris" in done.stdout  # the table was printed

    document = json.loads(out.read_text())
    (run,) = document["runs"].values()
    result = run["results"]["slowloris"]
    assert result["baseline_ms"]["count"] > 0 and result["latency_ms"]["count"] > 0
    assert result["p50_ratio"] == result["latency_ms"]["p50"] / result["baseline_ms"]["p50"]
    attacker = result["attacker"]
    assert attacker["cpu_s"] > 0 and attacker["attempts"] >= 134
    # The guard held the one attacking address to its limit: the rest were refused.
    assert attacker["rounds"][0]["failed"] > 0 and attacker["rounds"][0]["open_peak"] <= 64


def test_the_web_thread_bench_renders_a_page_of_fifty_and_hears_live_posts(tmp_path):
    out = tmp_path / "web_thread.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.web_thread", "--messages", "60", "--samples", "3", "--out", str(out)],
        check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["messages_in_thread"] == 63 and report["page_bytes"] > 0
    for metric in ("page_ms", "api_latest_ms", "live_ms"):
        assert report[metric]["count"] == 3 and 0 < report[metric]["p50"] <= report[metric]["max"], metric
    assert report["page_over_api"] > 0
