"""The outbound guard's cost per message: `python -m bench.outbound_guard [--items 10000]`.

Issue 14 asks for it with 10,000 knowledge items. The guard runs in the posting request, before
the event is signed (`node.guard.outbound`), so its cost adds to every post's latency. This
bench runs it in process on a real SQLite database of the node's schema, seeded with
`--items` knowledge items of 60-200 words each (distinct prose from a fixed vocabulary, seeded
random) and 1,000 private messages, and measures, per message kind, the median and p99 of one
`OutboundGuard.evaluate` (the database reads it makes included):

* `disabled`: the guard switched off, i.e. the cost of reading its settings;
* `rules_only`: built-in secrets, 20 operator patterns and 200 terms; private content off;
* `full`: the defaults plus those rules, private content on, against the 10,000 items;

each for a 30-word message, a 300-word answer, and a 300-word answer that quotes a reworded
paragraph of one item (found). It also reports how long the first check takes (building the
index), the index's memory (tracemalloc), the first check after one new item is added, and
`full` again with that item waiting outside the sorted array (`full_after_new_items`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

from bench.report import machine
from bench.stats import summary_ms
from node.basics.clock import SystemClock
from node.guard.outbound import GUARD_SCOPE, OutboundGuard
from storage.storage import Storage

__all__ = ["main"]

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "outbound_guard.json"
_WORDS = ("account acme adapter alert api approval archive audit backfill backlog balance batch billing board budget "
          "bucket cache calendar cancel capacity certificate change channel checklist client cluster commit "
          "contract cost credit customer cutover dashboard data deadline deploy discount domain draft escalation "
          "estimate export failover feature fee forecast gateway globex handover incident invoice ledger license "
          "limit load margin merge metric migration milestone monitor network node onboarding outage owner "
          "partner patch payment pipeline plan platform policy price priority quota queue rate region release "
          "renewal report request retry review risk rollout runbook schedule seat server service signoff "
          "staging storage support tenant ticket timeline token traffic upgrade usage vendor version wave "
          "webhook window workflow").split()
_GLUE = ("the", "a", "for", "and", "of", "to", "with", "on", "before", "after", "in", "by")


def _prose(rng: random.Random, words: int) -> str:
    out = []
    for i in range(words):
        out.append(rng.choice(_GLUE) if i % 3 == 1 else rng.choice(_WORDS))
        if rng.random() < 0.08:
            out.append(str(rng.randint(1, 9999)))
    return " ".join(out).capitalize() + "."


def _reword(text: str, rng: random.Random) -> str:
    """Case changed, punctuation added, one word in twelve dropped."""
    words = [w for i, w in enumerate(text.split()) if i % 12 != 5]
    return ", ".join(" ".join(words[i:i + 7]).upper() if rng.random() < 0.2 else " ".join(words[i:i + 7])
                     for i in range(0, len(words), 7))


async def _seed(storage: Storage, items: int, rng: random.Random) -> list[str]:
    bodies = [_prose(rng, rng.randint(60, 200)) for _ in range(items)]
    now = SystemClock().now_ms()
    async with storage.transaction() as tx:
        for i, body in enumerate(bodies):
            await tx.knowledge.add(title=f"Item {i} " + " ".join(rng.sample(_WORDS, 3)), body=body,
                                   reader_ids=None, now=now)
        owner = (await tx.principals.create(kind="agent", handle="bench", display_name="Bench", profile="",
                                                     now=now)).id
        thread = await tx.private_threads.create(name="internal", title="Internal notes", member_ids=[owner],
                                                 now=now)
        for _ in range(1_000):
            await tx.private_threads.post(thread.id, sender_id=owner, body=_prose(rng, rng.randint(5, 60)), now=now)
    return bodies


def _rules() -> dict:
    return {"rules": [{"name": f"customer-{i}", "pattern": rf"\bC{i:02d}-[0-9]{{6}}\b", "action": "block"}
                      for i in range(20)],
            "terms": [f"codename{i} project" for i in range(200)]}


async def _set(storage: Storage, settings: dict) -> None:
    async with storage.transaction() as tx:
        await tx.policies.put(GUARD_SCOPE, settings, now=SystemClock().now_ms(), by="bench")


async def _time(guard: OutboundGuard, text: str, repeat: int) -> dict:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter_ns()
        await guard.evaluate(author="agent:bench@acme.example", network="n", thread="t", field="message", text=text)
        samples.append(time.perf_counter_ns() - started)
    return summary_ms(samples)


async def run(items: int, repeat: int) -> dict:
    rng = random.Random(14)
    with tempfile.TemporaryDirectory() as root:
        storage = await Storage.open(f"sqlite:///{root}/guard.db")
        try:
            bodies = await _seed(storage, items, rng)
            short, answer = _prose(rng, 30), _prose(rng, 300)
            leaked = f"{_prose(rng, 150)} {_reword(bodies[items // 2], rng)} {_prose(rng, 100)}"
            texts = {"short_30_words": short, "answer_300_words": answer, "answer_quoting_an_item": leaked}
            results: dict = {"items": items, "private_messages": 1_000, "repeat": repeat}

            await _set(storage, {"enabled": False})
            guard = OutboundGuard(storage, SystemClock())
            results["disabled"] = {k: await _time(guard, t, repeat) for k, t in texts.items()}

            await _set(storage, {**_rules(), "private_content": "off"})
            guard.touch()  # as the admin API does when it changes the settings
            results["rules_only"] = {k: await _time(guard, t, repeat) for k, t in texts.items()}

            await _set(storage, {**_rules(), "private_content": "flag"})
            guard.touch()
            started = time.perf_counter()
            verdict = await guard.evaluate(author="a", network="n", thread="t", field="message", text=leaked)
            results["index_build_s"] = round(time.perf_counter() - started, 3)
            tracemalloc.start()  # a second guard, built again under tracemalloc (which slows it down)
            other = OutboundGuard(storage, SystemClock())
            await other.evaluate(author="a", network="n", thread="t", field="message", text=short)
            current, _peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            del other
            results["index_memory_mb"] = round(current / 2**20, 1)
            results["quote_found"] = [f.source for f in verdict.findings]
            results["full"] = {k: await _time(guard, t, repeat) for k, t in texts.items()}

            async with storage.transaction() as tx:
                await tx.knowledge.add(title="One more", body=_prose(rng, 120), reader_ids=None,
                                       now=SystemClock().now_ms())
            guard.touch()  # as the admin API does when it adds an item
            started = time.perf_counter()
            await guard.evaluate(author="a", network="n", thread="t", field="message", text=short)
            results["first_check_after_a_new_item_ms"] = round((time.perf_counter() - started) * 1000, 2)
            results["full_after_new_items"] = {k: await _time(guard, t, repeat) for k, t in texts.items()}
        finally:
            await storage.close()
    return results


def _print(results: dict) -> None:
    print(f"{results['items']} knowledge items, {results['private_messages']} private messages; "
          f"index built in {results['index_build_s']} s, {results['index_memory_mb']} MB; "
          f"a new item costs the next check {results['first_check_after_a_new_item_ms']} ms")
    print(f"{'setting':<20} {'message':<24} {'p50 ms':>8} {'p99 ms':>8}")
    for setting in ("disabled", "rules_only", "full", "full_after_new_items"):
        for kind, figures in results[setting].items():
            print(f"{setting:<20} {kind:<24} {figures['p50']:>8.3f} {figures['p99']:>8.3f}")
    print(f"the quoted paragraph was found in: {results['quote_found']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.outbound_guard", description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=300, help="checks per message kind and setting")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.items, args.repeat))
    _print(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"at": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
                                    **results}, indent=2) + "\n")
    return 0 if results["quote_found"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
