"""The web app's thread page on a long thread: `python -m bench.web_thread [--messages 10000]`.

Issue 16 asks for the thread page's first render and its live update, measured on a thread of
10,000 messages. One node process (`agentnet run`, SQLite or PostgreSQL), a network it hosts,
a thread with an agent that posts `--messages` messages (16 at a time) and a person signed in
to the web app with a one-time link. Then, in one run:

* `page_ms`: GET of the thread page (server-rendered, the newest 50 messages: a page never
  holds the whole thread), `--samples` times; with its size in bytes;
* `api_latest_ms`: the same 50 messages from the client API (`?before=latest&limit=50`), the
  baseline the page's rendering adds to;
* `live_ms`: a post through the API until its frame arrives on the page's event stream
  (`/app/events`, what the page's script listens to), `--samples` times.

Medians and ratios are from one run; the machine is shared, so compare runs only side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from bench.network import open_network
from bench.nodes import BenchCluster, BenchNode
from bench.report import machine
from bench.stats import summary_ms

__all__ = ["main", "run_web_thread"]

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "web_thread.json"
THREAD = "long-thread"


async def _post_many(node: BenchNode, token: str, network: str, count: int) -> float:
    """`count` posts, 16 at a time; the seconds it took."""
    url = f"{node.client_url}/v1/networks/{network}/threads/{THREAD}/messages"
    queue = iter(range(count))
    started = time.monotonic()
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        async def worker() -> None:
            for i in queue:
                async with http.post(url, json={"body": f"Status line {i}: retries validated on batch {i % 97}."}) as r:
                    if r.status != 201:
                        raise RuntimeError(f"post {i}: {r.status} {await r.text()}")

        await asyncio.gather(*(worker() for _ in range(16)))
    return time.monotonic() - started


async def _signed_in(node: BenchNode, http: aiohttp.ClientSession) -> None:
    link = (await node.admin("POST", "/v1/people/alex/sign-in-link", {}))["url"]
    async with http.get(link) as page:
        token = re.search(r'name="token" value="([^"]+)"', await page.text()).group(1)  # type: ignore[union-attr]
    async with http.post(f"{node.client_url}/app/sign-in", data={"token": token}) as home:
        if not str(home.url).endswith("/app/"):
            raise RuntimeError(f"sign-in ended at {home.url}")


async def run_web_thread(root: Path, backend: str, *, messages: int, samples: int) -> dict:
    async with BenchCluster(root, backend) as cluster:
        (host,) = await cluster.init_nodes("h.bench")
        await cluster.start(host)
        net = await open_network(host, [], {host.server: ["poster"]})
        await host.admin("POST", "/v1/people", {"handle": "alex", "display_name": "Alex Rivera"})
        await host.admin("POST", f"/v1/networks/{net.name}/participants", {"participant": "person:alex"})
        await host.admin("POST", f"/v1/networks/{net.name}/threads", {
            "name": THREAD, "title": "A long thread",
            "participants": [f"agent:poster@{host.server}", f"person:alex@{host.server}"]})
        token = net.tokens[(host.server, "poster")]
        filled_s = await _post_many(host, token, net.name, messages)

        page_url = f"{host.client_url}/app/networks/{net.name}/threads/{THREAD}"
        page_ns, api_ns, live_ns, sizes = [], [], [], []
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser, \
                aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as api:
            await _signed_in(host, browser)
            for _ in range(samples):
                started = time.perf_counter_ns()
                async with browser.get(page_url) as page:
                    html = await page.text()
                page_ns.append(time.perf_counter_ns() - started)
                sizes.append(len(html.encode()))
                shown = html.count('class="message')
                if shown != 50:
                    raise RuntimeError(f"the page shows {shown} messages, not 50")
                started = time.perf_counter_ns()
                async with api.get(f"{host.client_url}/v1/networks/{net.name}/threads/{THREAD}/messages",
                                   params={"before": "latest", "limit": "50"}) as latest:
                    await latest.read()
                api_ns.append(time.perf_counter_ns() - started)
            cursor = re.search(r'data-cursor="(\d+)"', html).group(1)  # type: ignore[union-attr]
            async with browser.get(f"{host.client_url}/app/events",
                                   params={"network": net.name, "thread": THREAD, "after": cursor}) as stream:
                for i in range(samples):
                    started = time.perf_counter_ns()
                    async with api.post(f"{host.client_url}/v1/networks/{net.name}/threads/{THREAD}/messages",
                                        json={"body": f"live {i}"}) as posted:
                        posted.raise_for_status()
                    async for line in stream.content:
                        if line.startswith(b"data: ") and f'"live {i}"'.encode() in line:
                            live_ns.append(time.perf_counter_ns() - started)
                            break
        page_ms, api_ms, live = summary_ms(page_ns), summary_ms(api_ns), summary_ms(live_ns)
        return {
            "messages_in_thread": messages + samples, "fill_s": round(filled_s, 1),
            "page_ms": page_ms, "page_bytes": sorted(sizes)[len(sizes) // 2], "api_latest_ms": api_ms,
            "page_over_api": round(page_ms["p50"] / api_ms["p50"], 2), "live_ms": live,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agentnet-web-bench-") as root:
        result = asyncio.run(run_web_thread(Path(root), args.backend, messages=args.messages, samples=args.samples))
    report = {"bench": "web_thread", "at": datetime.now(UTC).isoformat(timespec="seconds"), "backend": args.backend,
              "machine": machine(), **result}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
