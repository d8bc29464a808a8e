"""The client listener's token cache (`node.http.auth.principal_authenticator` with a tokens
version): a verified token is reused for at most TOKEN_CACHE_MS, never past its expiry, and
every token change made through this process ends every entry at once."""

from __future__ import annotations

from node.http.auth import TOKEN_CACHE_MS, principal_authenticator
from node.workspace.tokens import issue_token
from tests.node.conftest import FakeClock


class Version:
    def __init__(self) -> None:
        self.value = 0

    def __call__(self) -> int:
        return self.value


async def _agent_with_token(storage, clock, *, expires_at=None):
    issued = issue_token("agt")
    async with storage.transaction() as tx:
        agent = await tx.principals.create(kind="agent", handle="ops", display_name="Ops", profile="", now=clock.now_ms())
        record = await tx.tokens.add(agent.id, token_hash=issued.digest, prefix=issued.prefix,
                                     scopes=frozenset({"read"}), expires_at=expires_at, now=clock.now_ms())
    return agent, record, issued.secret


async def _revoke(storage, clock, agent, record) -> None:
    """Behind the cache's back: as another node process on the same database would."""
    async with storage.transaction() as tx:
        await tx.tokens.revoke(agent.id, record.id, now=clock.now_ms())


async def test_a_cached_token_is_trusted_for_at_most_the_cache_time(storage):
    clock, version = FakeClock(), Version()
    authenticate = principal_authenticator(storage, clock, tokens_version=version)
    agent, record, secret = await _agent_with_token(storage, clock)
    assert (await authenticate(secret)).principal.id == agent.id
    await _revoke(storage, clock, agent, record)
    assert await authenticate(secret) is not None  # within the cache time: not read again
    clock.now += TOKEN_CACHE_MS
    assert await authenticate(secret) is None


async def test_a_token_change_through_this_process_ends_the_cache_at_once(storage):
    clock, version = FakeClock(), Version()
    authenticate = principal_authenticator(storage, clock, tokens_version=version)
    agent, record, secret = await _agent_with_token(storage, clock)
    assert await authenticate(secret) is not None
    await _revoke(storage, clock, agent, record)
    version.value += 1  # what the admin service's on_tokens_changed does
    assert await authenticate(secret) is None


async def test_a_cached_token_is_refused_once_it_expires(storage):
    clock, version = FakeClock(), Version()
    authenticate = principal_authenticator(storage, clock, tokens_version=version)
    _agent, _record, secret = await _agent_with_token(storage, clock, expires_at=clock.now + 100)
    assert await authenticate(secret) is not None
    clock.now += 100
    assert await authenticate(secret) is None


async def test_refused_tokens_are_not_cached(storage):
    clock, version = FakeClock(), Version()
    authenticate = principal_authenticator(storage, clock, tokens_version=version)
    assert await authenticate("anagt_not-a-token") is None
    _agent, _record, secret = await _agent_with_token(storage, clock)
    assert await authenticate(secret) is not None


async def test_without_a_tokens_version_every_request_reads_the_database(storage):
    clock = FakeClock()
    authenticate = principal_authenticator(storage, clock)
    agent, record, secret = await _agent_with_token(storage, clock)
    assert await authenticate(secret) is not None
    await _revoke(storage, clock, agent, record)
    assert await authenticate(secret) is None


async def test_an_assembled_node_refuses_a_revoked_token_at_once(tmp_path):
    """The node as `node.main.assembly` wires it caches tokens; a revocation through its admin API
    still refuses the very next request."""
    from tests.cluster import start_node
    from tests.tls_fixtures import TestCertificateAuthority

    node = await start_node(tmp_path, "acme.example", TestCertificateAuthority())
    try:
        await node.create("agent", "ops", "Ops")
        issued = await node.admin("POST", "/v1/agents/ops/tokens", {"scopes": ["read"]})
        await node.client(issued["token"], "GET", "/v1/threads", expect=200)  # now cached
        await node.admin("POST", f"/v1/agents/ops/tokens/{issued['id']}/revoke")
        answer = await node.client(issued["token"], "GET", "/v1/threads", expect=401)
        assert answer["error"]["code"] == "unauthorized"
    finally:
        await node.stop()
