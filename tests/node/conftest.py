"""A node's two local listeners on a fresh database, with a clock the test controls."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from node.app import build_admin_app, build_client_app
from node.bootstrap import bootstrap_company
from node.directory import Directory

SERVER = "acme.example"


class FakeClock:
    def __init__(self, start: int = 1_700_000_000_000) -> None:
        self.now = start

    def now_ms(self) -> int:
        self.now += 1
        return self.now


@dataclass
class Node:
    admin: object  # aiohttp TestClient for the admin listener
    client: object  # aiohttp TestClient for the client listener
    admin_token: str
    storage: object

    def as_admin(self) -> dict:
        return {"Authorization": f"Bearer {self.admin_token}"}

    async def create(self, kind: str, handle: str, **extra) -> str:
        plural = "agents" if kind == "agent" else "people"
        resp = await self.admin.post(
            f"/v1/{plural}", json={"handle": handle, "display_name": handle.title(), **extra},
            headers=self.as_admin(),
        )
        assert resp.status == 201, await resp.text()
        return (await resp.json())["token"]


@pytest.fixture
async def node(storage, aiohttp_client) -> Node:
    clock = FakeClock()
    token = await bootstrap_company(storage, server_name=SERVER, display_name="Acme", now=clock.now_ms())
    directory = Directory(SERVER)
    admin = await aiohttp_client(build_admin_app(storage, clock, directory, max_body_bytes=64 * 1024))
    client = await aiohttp_client(build_client_app(storage, clock, directory, max_body_bytes=64 * 1024))
    return Node(admin, client, token, storage)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}
