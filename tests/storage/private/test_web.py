"""The web app's sign-in links, sessions and read positions, against SQLite and PostgreSQL alike
(`storage.private.web`): a link works once, even when two browsers race with it; a session ends
when revoked, expired or its person is disabled; a read position never goes back."""

import asyncio

from node.workspace.tokens import hash_token as digest

NOW = 1_700_000_000_000


async def _person(storage, handle: str = "alex", kind: str = "person") -> int:
    async with storage.transaction() as tx:
        return (await tx.principals.create(kind=kind, handle=handle, display_name=handle.title(), profile="",
                                           now=NOW)).id


async def test_a_link_works_once_even_when_two_use_it_at_once(storage):
    alex = await _person(storage)
    async with storage.transaction() as tx:
        await tx.web.add_link(alex, token_hash=digest("link"), now=NOW, expires_at=NOW + 1000)
        await tx.web.add_link(alex, token_hash=digest("old"), now=NOW, expires_at=NOW + 10)

    async def use() -> int | None:
        async with storage.transaction() as tx:
            return await tx.web.use_link(digest("link"), now=NOW + 1)

    assert sorted(await asyncio.gather(use(), use()), key=str) == [alex, None]
    async with storage.read_transaction() as tx:
        assert not await tx.web.link_usable(digest("link"), now=NOW + 2)
        assert not await tx.web.link_usable(digest("old"), now=NOW + 10)  # expired
        assert await tx.web.use_link(digest("never"), now=NOW) is None


async def test_a_session_lives_until_revoked_expired_or_its_person_disabled(storage):
    alex = await _person(storage)
    async with storage.transaction() as tx:
        first = await tx.web.add_session(alex, token_hash=digest("s1"), csrf="c1", now=NOW, expires_at=NOW + 100,
                                         user_agent="x" * 500)
        await tx.web.add_session(alex, token_hash=digest("s2"), csrf="c2", now=NOW, expires_at=NOW + 100,
                                 user_agent="Firefox")
    assert len(first.user_agent) == 200
    async with storage.read_transaction() as tx:
        session, person = await tx.web.live(digest("s1"), now=NOW + 1)
        assert (session.csrf, person.handle) == ("c1", "alex")
        assert await tx.web.live(digest("s1"), now=NOW + 100) is None  # expired
        assert [s.csrf for s, _p in await tx.web.sessions(now=NOW + 1)] == ["c2", "c1"]  # newest first
    async with storage.transaction() as tx:
        assert await tx.web.revoke(first.id, now=NOW + 2)
        assert not await tx.web.revoke(first.id, now=NOW + 3)  # once
        assert await tx.web.live(digest("s1"), now=NOW + 4) is None
        await tx.principals.set_disabled(alex, True)
        assert await tx.web.live(digest("s2"), now=NOW + 4) is None


async def test_a_read_position_never_goes_back(storage):
    alex = await _person(storage)
    async with storage.transaction() as tx:
        await tx.web.mark_seen(alex, "rollout", "status", 7)
        await tx.web.mark_seen(alex, "rollout", "status", 5)  # an older page shown later
        await tx.web.mark_seen(alex, "rollout", "other", 2)
        assert await tx.web.seen(alex) == {("rollout", "status"): 7, ("rollout", "other"): 2}
        await tx.web.mark_seen(alex, "rollout", "status", 9)
        assert (await tx.web.seen(alex))[("rollout", "status")] == 9
