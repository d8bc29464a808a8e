"""Many agents posting at once in one shared thread, on the host: every post is sequenced once,
in one gap-free order, on SQLite (where units of work that write take turns) and PostgreSQL
(row locks)."""

import asyncio

from tests.cluster import start_node
from tests.tls_fixtures import TestCertificateAuthority

AGENTS, POSTS = 4, 40


async def test_concurrent_posts_on_the_host_are_all_sequenced(tmp_path, database_url):
    node = await start_node(tmp_path, "acme.example", TestCertificateAuthority(), database_url=database_url)
    try:
        tokens = [await node.create("agent", f"a{i}", f"Agent {i}") for i in range(AGENTS)]
        await node.admin("POST", "/v1/networks", {"name": "net", "title": "Net"}, expect=201)
        for i in range(AGENTS):
            await node.admin("POST", "/v1/networks/net/participants", {"participant": f"agent:a{i}"})
        await node.admin("POST", "/v1/networks/net/threads", {
            "name": "t", "title": "T", "participants": [f"agent:a{i}@acme.example" for i in range(AGENTS)]})
        url = f"http://127.0.0.1:{node.ports['client']}/v1/networks/net/threads/t/messages"

        async def post(n: int) -> int:
            headers = {"Authorization": f"Bearer {tokens[n % AGENTS]}"}
            async with node.http.post(url, json={"body": f"m{n}"}, headers=headers) as resp:
                return resp.status

        assert await asyncio.gather(*[post(n) for n in range(POSTS)]) == [201] * POSTS
        page = await node.client(tokens[0], "GET", "/v1/networks/net/threads/t/messages?limit=200")
        seqs = [m["seq"] for m in page["messages"]]
        assert sorted(m["body"] for m in page["messages"]) == sorted(f"m{n}" for n in range(POSTS))
        assert seqs == list(range(seqs[0], seqs[0] + POSTS))  # one order, no gap, no duplicate
    finally:
        await node.stop()
