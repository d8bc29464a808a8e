"""Path parameters are checked by their name before any handler runs: a malformed one is a 422
naming it, the handler (and so every service) never sees it, and the document says the same."""

from __future__ import annotations

import pytest
from aiohttp import web

from node.http.errors import error_middleware
from node.http.openapi import Endpoint, add_endpoints, openapi_document
from node.http.path_parameters import PATH_PARAMETERS
from tests.cluster import start_node
from tests.tls_fixtures import TestCertificateAuthority

BAD = {
    "handle": ["Ops", "-ops", "a" * 65, "ops;drop"],
    "name": ["Billing", "bill_ing", "a" * 65],
    "network": ["-rollout", "roll.out"],
    "thread": ["Launch", "a b"],
    "server": ["0", "1.2", "Acme.example", "acme..example", "acme.example:0", "acme.example:99999", "a" * 256],
    "invite": ["short", "x" * 65, "a+b" * 8],
    "token_id": ["abc", "-1", "9" * 19, "\u00b2"],
    "webhook": ["1.5", "0x10", "\u0663"],
}


@pytest.fixture
async def echo(aiohttp_client):
    """One route per parameter name; each answers with what it was handed."""
    seen = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(dict(request.match_info))
        return web.json_response(dict(request.match_info))

    app = web.Application(middlewares=[error_middleware])
    add_endpoints(app, [Endpoint("GET", f"/{name}/{{{name}}}", handler, name) for name in PATH_PARAMETERS])
    return await aiohttp_client(app), seen


@pytest.mark.parametrize(("name", "value"), [(n, v) for n, values in BAD.items() for v in values])
async def test_a_malformed_path_parameter_is_422_naming_it(echo, name, value):
    client, seen = echo
    resp = await client.get(f"/{name}/{value}")
    assert resp.status == 422, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "invalid_request" and name in error["message"]
    assert [(f["field"], f["location"]) for f in error["fields"]] == [(name, "path")]
    assert seen == []


@pytest.mark.parametrize(("name", "value"), [("handle", "ops.bot-1"), ("name", "billing"), ("network", "rollout"),
                                             ("server", "acme.example"), ("server", "127.0.0.1:8443"),
                                             ("invite", "a" * 32), ("token_id", "12"), ("webhook", "7")])
async def test_a_well_formed_one_reaches_the_handler(echo, name, value):
    client, seen = echo
    resp = await client.get(f"/{name}/{value}")
    assert resp.status == 200
    assert seen == [{name: value}]


def test_a_route_with_an_undeclared_parameter_is_refused_when_the_app_is_built():
    async def handler(_request):
        return web.Response()

    with pytest.raises(KeyError, match="alert"):
        add_endpoints(web.Application(), [Endpoint("GET", "/v1/alerts/{alert}", handler, "an alert")])


def test_the_document_publishes_the_same_patterns():
    async def handler(_request):
        return web.Response()

    document = openapi_document("t", "1", [Endpoint("POST", "/v1/networks/{network}/members/{server}/remove",
                                                    handler, "remove")])
    params = document["paths"]["/v1/networks/{network}/members/{server}/remove"]["post"]["parameters"]
    assert [(p["name"], p["in"], p["required"]) for p in params] == [("network", "path", True),
                                                                    ("server", "path", True)]
    assert all(p["schema"]["pattern"].startswith("^") for p in params)
    assert params[1]["schema"]["maxLength"] == 255


async def test_removing_a_malformed_server_is_refused_and_changes_nothing(tmp_path):
    """Once a 500: the server name was first checked inside the event the service built."""
    acme = await start_node(tmp_path, "acme.example", TestCertificateAuthority())
    try:
        await acme.admin("POST", "/v1/networks", {"name": "rollout", "title": "Rollout"}, expect=201)
        before = (await acme.admin("GET", "/v1/audit"), await acme.admin("GET", "/v1/networks/rollout"))
        for path in ("/v1/networks/rollout/members/0/remove", "/v1/peers/1.2/block", "/v1/peers/Acme/unblock"):
            refused = await acme.admin("POST", path, expect=422)
            assert [f["field"] for f in refused["error"]["fields"]] == ["server"]
        assert (await acme.admin("GET", "/v1/audit"), await acme.admin("GET", "/v1/networks/rollout")) == before
    finally:
        await acme.stop()
