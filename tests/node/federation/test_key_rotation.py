"""A member rotates its key mid-network: the host learns the new key from the member itself,
a member that never peered with it learns it through the host's relay, and a company joining
later verifies history signed with both the old and the new key."""

from __future__ import annotations

import pytest

from federation.canonical_json import parse_json
from federation.key_documents import verify_key_document
from federation.keys import SigningKey
from node.basics.clock import SystemClock
from node.federation.key_publishing import rotate_node_key
from node.federation.tls import client_ssl_context
from storage.storage import Storage
from tests.cluster import eventually, start_node
from tests.node.federation.test_lifecycle import NETWORK, SERVERS, bodies, incident, join, post
from tests.tls_fixtures import TestCertificateAuthority


@pytest.fixture
async def four(tmp_path):
    ca = TestCertificateAuthority()
    nodes = [await start_node(tmp_path, server, ca) for server in [*SERVERS, "umbrella.example"]]
    yield nodes
    for node in reversed(nodes):
        await node.stop()


async def test_rotation_is_followed_by_peers_members_and_late_joiners(four):
    acme, globex, initech, umbrella = four
    tokens = await incident([acme, globex, initech])
    await post(globex, tokens[globex.server], "signed with the old key")
    await eventually(lambda: _everywhere([acme, globex, initech], tokens, "signed with the old key"))

    old_key = globex.key
    await globex.stop()
    key_file = globex.data_dir / "signing.key"
    old_key.save(key_file)
    storage = await Storage.open(globex.database_url)
    try:
        old, new = await rotate_node_key(storage, key_file, server=globex.server, now=SystemClock().now_ms())
    finally:
        await storage.close()
    assert old.key_id == old_key.key_id
    globex.key = SigningKey.load(key_file)
    await globex.start()

    # The published document chains from the old key to the new one.
    tls = client_ssl_context(globex.data_dir / "ca.pem")
    async with globex.http.get(f"{globex.endpoint}/_agentnet/v1/keys", ssl=tls, server_hostname=globex.server) as resp:
        document = parse_json(await resp.read())
    verified = verify_key_document(document, server=globex.server, pinned={old.key_id: old.verify_key})
    assert verified.current_key_id == new.key_id and verified.get(old.key_id).valid_until is not None

    await post(globex, tokens[globex.server], "signed with the new key")
    await eventually(lambda: _everywhere([acme, globex, initech], tokens, "signed with the new key"), timeout=30)

    # A company admitted afterwards checks the whole history, old and new signatures alike.
    await join(acme, umbrella)
    await eventually(lambda: _head_matches(acme, umbrella))


async def _everywhere(nodes, tokens, body: str) -> bool:
    for node in nodes:
        view = await bodies(node, tokens[node.server])
        if (body not in [b for s, b in view if s is not None]):
            return False
    return True


async def _head_matches(host, member) -> bool:
    a = await host.admin("GET", f"/v1/networks/{NETWORK}")
    b = await member.admin("GET", f"/v1/networks/{NETWORK}")
    return a["head_seq"] == b["head_seq"] and b["head_seq"] > 0
