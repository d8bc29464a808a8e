"""Repository behaviour, run against SQLite and PostgreSQL alike."""

import pytest

from storage.errors import AlreadyExists, NotFound

NOW = 1_700_000_000_000


async def _people(storage, *handles):
    async with storage.transaction() as tx:
        return [
            await tx.principals.create(
                kind="person", handle=h, display_name=h.title(), profile="", now=NOW
            )
            for h in handles
        ]


async def test_principal_handles_are_unique_per_kind(storage):
    (alex,) = await _people(storage, "alex")
    with pytest.raises(AlreadyExists):
        await _people(storage, "alex")
    async with storage.transaction() as tx:
        agent = await tx.principals.create(
            kind="agent", handle="alex", display_name="Alex bot", profile="", now=NOW
        )
        assert agent.id != alex.id
        assert [p.kind for p in await tx.principals.all()] == ["agent", "person"]
        with pytest.raises(NotFound):
            await tx.principals.get("agent", "nobody")


async def test_failed_transaction_changes_nothing(storage):
    with pytest.raises(AlreadyExists):
        async with storage.transaction() as tx:
            await tx.principals.create(kind="person", handle="sam", display_name="S", profile="", now=NOW)
            await tx.principals.create(kind="person", handle="sam", display_name="S", profile="", now=NOW)
    async with storage.transaction() as tx:
        assert await tx.principals.all() == []


async def test_token_lookup_respects_revocation_and_disabling(storage):
    (alex,) = await _people(storage, "alex")
    async with storage.transaction() as tx:
        await tx.tokens.add(alex.id, token_hash="h1", prefix="p1", scopes=frozenset({"read"}), expires_at=None,
                            now=NOW)
        principal, token = await tx.tokens.principal_for("h1", now=NOW)
        assert principal.id == alex.id and token.scopes == {"read"}
        assert await tx.tokens.principal_for("nope", now=NOW) is None
        await tx.principals.set_disabled(alex.id, True)
        assert await tx.tokens.principal_for("h1", now=NOW) is None
        await tx.principals.set_disabled(alex.id, False)
        assert await tx.tokens.revoke_all(alex.id, now=NOW) == 1
        assert await tx.tokens.principal_for("h1", now=NOW) is None


async def test_token_expiry_and_single_revocation(storage):
    (alex,) = await _people(storage, "alex")
    async with storage.transaction() as tx:
        short = await tx.tokens.add(alex.id, token_hash="h1", prefix="p1", scopes=frozenset({"read", "post"}),
                                    expires_at=NOW + 1000, now=NOW)
        other = await tx.tokens.add(alex.id, token_hash="h2", prefix="p2", scopes=frozenset({"read"}),
                                    expires_at=None, now=NOW)
        assert await tx.tokens.principal_for("h1", now=NOW + 999) is not None
        assert await tx.tokens.principal_for("h1", now=NOW + 1000) is None  # expired at its instant
        revoked = await tx.tokens.revoke(alex.id, other.id, now=NOW + 5)
        assert revoked.revoked_at == NOW + 5 and not revoked.live_at(NOW + 6)
        assert await tx.tokens.principal_for("h2", now=NOW + 6) is None
        assert [t.id for t in await tx.tokens.list_for(alex.id)] == [short.id, other.id]
        with pytest.raises(NotFound):
            await tx.tokens.revoke(alex.id + 1000, short.id, now=NOW)  # not this principal's token


async def test_admin_tokens(storage):
    async with storage.transaction() as tx:
        await tx.admin_tokens.add(token_hash="a" * 64, prefix="x", now=NOW)
        assert await tx.admin_tokens.prefix_of("a" * 64) == "x"
        assert await tx.admin_tokens.prefix_of("b" * 64) is None
        await tx.admin_tokens.revoke_all(now=NOW)
        assert await tx.admin_tokens.prefix_of("a" * 64) is None


async def test_private_threads_members_and_pagination(storage):
    alex, sam = await _people(storage, "alex", "sam")
    async with storage.transaction() as tx:
        billing = await tx.private_threads.create(
            name="billing-escalations", title="Billing", member_ids=[alex.id], now=NOW
        )
        await tx.private_threads.create(name="all-hands", title="All", member_ids=[alex.id, sam.id], now=NOW)
        with pytest.raises(AlreadyExists):
            await tx.private_threads.create(name="all-hands", title="Again", member_ids=[], now=NOW)
    async with storage.transaction() as tx:
        assert [t.name for t in await tx.private_threads.all(member_id=sam.id)] == ["all-hands"]
        assert [t.name for t in await tx.private_threads.all()] == ["all-hands", "billing-escalations"]
        for i in range(5):
            await tx.private_threads.post(billing.id, sender_id=alex.id, body=f"m{i}", now=NOW + i)
        first = await tx.private_threads.messages(billing.id, limit=2)
        rest = await tx.private_threads.messages(billing.id, after_id=first[-1].id, limit=10)
        assert [m.body for m in first + rest] == ["m0", "m1", "m2", "m3", "m4"]
        await tx.private_threads.set_members(billing.id, [sam.id])
        assert (await tx.private_threads.get("billing-escalations")).member_ids == (sam.id,)


async def test_knowledge_search_respects_readers(storage):
    alex, sam = await _people(storage, "alex", "sam")
    async with storage.transaction() as tx:
        await tx.knowledge.add(title="Runbook", body="Webhook validation steps", reader_ids=None, now=NOW)
        await tx.knowledge.add(title="Account notes", body="Webhook contract for Acme", reader_ids=[alex.id], now=NOW)
        await tx.knowledge.add(title="Other", body="Nothing relevant", reader_ids=None, now=NOW)
    async with storage.transaction() as tx:
        assert [i.title for i in await tx.knowledge.search("webhook", reader_id=None, limit=10)] == [
            "Runbook", "Account notes"]
        assert [i.title for i in await tx.knowledge.search("WEBHOOK", reader_id=alex.id, limit=10)] == [
            "Runbook", "Account notes"]
        assert [i.title for i in await tx.knowledge.search("webhook", reader_id=sam.id, limit=10)] == ["Runbook"]
        assert [i.title for i in await tx.knowledge.search("webhook acme", reader_id=None, limit=10)] == [
            "Account notes"]
        assert await tx.knowledge.search("", reader_id=None, limit=10) == []


@pytest.mark.parametrize("query", ['"', "a OR", "NEAR(", "title:x", "*", "-webhook", "'; drop table x; --", "\\"])
async def test_knowledge_search_never_interprets_query_syntax(storage, query):
    async with storage.transaction() as tx:
        await tx.knowledge.add(title="t", body="webhook", reader_ids=None, now=NOW)
    async with storage.transaction() as tx:
        await tx.knowledge.search(query, reader_id=None, limit=10)  # no error is the assertion
        assert len(await tx.knowledge.page(limit=10)) == 1


async def test_company_is_a_single_row(storage):
    async with storage.transaction() as tx:
        assert await tx.company.find() is None
        await tx.company.create(server_name="acme.example", display_name="Acme", now=NOW)
        with pytest.raises(AlreadyExists):
            await tx.company.create(server_name="other.example", display_name="X", now=NOW)
        assert (await tx.company.get()).server_name == "acme.example"
