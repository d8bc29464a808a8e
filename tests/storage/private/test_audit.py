"""The audit log's chain, against SQLite and PostgreSQL alike: filters, and a changed, removed
or rewritten row found by `verify`."""

import asyncio

import pytest
from sqlalchemy import text

from storage.private.audit import AuditFilter

NOW = 1_700_000_000_000


async def _record(storage, *entries):
    async with storage.transaction() as tx:
        for i, entry in enumerate(entries):
            await tx.audit.record(now=NOW + i, **{"actor": "admin:anadm_1", "target": "t", **entry})


async def _raw(storage, sql: str, **params) -> None:
    """What someone with write access to the database could do: the append-only trigger first."""
    async with storage.engine.begin() as conn:
        if storage.engine.dialect.name == "postgresql":
            await conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
        else:
            await conn.execute(text("DROP TRIGGER IF EXISTS audit_log_no_update"))
            await conn.execute(text("DROP TRIGGER IF EXISTS audit_log_no_delete"))
        await conn.execute(text(sql), params)


async def test_pages_newest_first_with_a_cursor_and_filters(storage):
    await _record(
        storage,
        {"action": "invite.accept", "network": "rollout", "partner": "globex.example"},
        {"action": "invite.decline", "network": "other", "partner": "initech.example"},
        {"action": "policy.set", "actor": "admin:anadm_2", "partner": "globex.example"},
        {"action": "person.create", "detail": {"i": 3}},
    )
    async with storage.transaction() as tx:
        page = await tx.audit.page(limit=3)
        assert [e.action for e in page] == ["person.create", "policy.set", "invite.decline"]
        assert [e.action for e in await tx.audit.page(before=page[-1].seq, limit=3)] == ["invite.accept"]
        assert page[0].detail == {"i": 3}

        async def actions(**where):
            return [e.action for e in await tx.audit.page(limit=10, where=AuditFilter(**where))]

        assert await actions(partner="globex.example") == ["policy.set", "invite.accept"]
        assert await actions(network="other") == ["invite.decline"]
        assert await actions(actor="admin:anadm_2") == ["policy.set"]
        assert await actions(action="invite.") == ["invite.decline", "invite.accept"]
        assert await actions(action="invite") == []  # exact unless it ends in "."
        assert await actions(since=NOW + 1, until=NOW + 3) == ["policy.set", "invite.decline"]


async def test_a_whole_chain_verifies_and_names_its_head(storage):
    await _record(storage, *({"action": "person.create", "detail": {"i": i}} for i in range(5)))
    await _record(storage, {"action": "agent.create"})
    async with storage.transaction() as tx:
        check = await tx.audit.verify()
        newest = (await tx.audit.page(limit=1))[0]
    assert check.ok and check.entries == 6 and check.broken_at is None
    assert (check.head_seq, check.head_hash) == (newest.seq, newest.hash)


async def test_an_empty_log_verifies(storage):
    async with storage.transaction() as tx:
        check = await tx.audit.verify()
    assert check.ok and check.entries == 0


async def test_rows_cannot_be_updated_or_deleted_through_sql(storage):
    await _record(storage, {"action": "person.create"})
    for sql in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
        with pytest.raises(Exception, match="append-only"):
            async with storage.engine.begin() as conn:
                await conn.execute(text(sql))
    async with storage.transaction() as tx:
        assert (await tx.audit.verify()).ok


async def test_an_altered_row_breaks_the_chain_at_that_row(storage):
    await _record(storage, *({"action": "invite.accept", "partner": f"p{i}.example"} for i in range(4)))
    await _raw(storage, "UPDATE audit_log SET partner = 'evil.example' WHERE seq = 2")
    async with storage.transaction() as tx:
        check = await tx.audit.verify()
    assert not check.ok and check.broken_at == 2 and "changed" in check.problem


async def test_a_removed_row_and_a_removed_tail_are_found(storage):
    await _record(storage, *({"action": "person.create", "detail": {"i": i}} for i in range(4)))
    await _raw(storage, "DELETE FROM audit_log WHERE seq = 4")
    async with storage.transaction() as tx:
        check = await tx.audit.verify()
    assert not check.ok and "removed" in check.problem
    await _raw(storage, "DELETE FROM audit_log WHERE seq = 2")
    async with storage.transaction() as tx:
        check = await tx.audit.verify()
    assert not check.ok and check.broken_at == 2 and "missing" in check.problem


async def test_a_rewritten_chain_is_found_only_against_an_anchor(storage):
    """Someone who recomputes every hash after a change makes a chain that holds together;
    the head written down earlier, somewhere else, is what shows it."""
    from storage.audit_writer import entry_hash

    await _record(storage, *({"action": "person.create", "detail": {"i": i}} for i in range(3)))
    async with storage.transaction() as tx:
        anchor = await tx.audit.verify()
    await _raw(storage, "UPDATE audit_log SET actor = 'nobody' WHERE seq = 1")
    async with storage.engine.begin() as conn:  # the trigger is gone: recompute the chain
        previous = "0" * 64
        for row in (await conn.execute(text("SELECT * FROM audit_log ORDER BY seq"))).all():
            values = {**row._mapping, "prev_hash": previous}
            previous = entry_hash(values)
            await conn.execute(text("UPDATE audit_log SET prev_hash = :p, hash = :h WHERE seq = :s"),
                               {"p": values["prev_hash"], "h": previous, "s": row.seq})
        await conn.execute(text("UPDATE audit_head SET hash = :h"), {"h": previous})
    async with storage.transaction() as tx:
        assert (await tx.audit.verify()).ok
        check = await tx.audit.verify(anchor=(anchor.head_seq, anchor.head_hash))
    assert not check.ok and check.broken_at == 3 and "rewritten" in check.problem


async def test_concurrent_writers_make_one_chain(storage):
    async def writer(i: int) -> None:
        for j in range(5):
            await _record(storage, {"action": "person.create", "detail": {"w": i, "j": j}},
                          {"action": "agent.create"})

    await asyncio.gather(*(writer(i) for i in range(6)))
    async with storage.transaction() as tx:
        check = await tx.audit.verify()
    assert check.ok and check.entries == 60
