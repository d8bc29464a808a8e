"""A client generated from the client listener's own OpenAPI document (openapi-python-client)
makes typed calls to a real node: every operation has an operationId and a tag, the
Idempotency-Key is a declared header parameter it sets per call, the stored answer comes back
with Idempotent-Replayed, refusals parse as the declared error bodies, and every answer carries
the declared rate-limit headers."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

from tests.cluster import ClusterNode, start_node
from tests.tls_fixtures import TestCertificateAuthority

ACME = "acme.example"
_CONFIG = "package_name_override: agentnet_generated\nproject_name_override: agentnet-generated\npost_hooks: []\n"


async def _world(tmp_path: Path) -> tuple[ClusterNode, str]:
    node = await start_node(tmp_path, ACME, TestCertificateAuthority())
    token = await node.create("agent", "ops", "Ops")
    await node.admin("POST", "/v1/networks", {"name": "desk", "title": "Desk"})
    await node.admin("POST", "/v1/networks/desk/participants", {"participant": "agent:ops"})
    await node.admin("POST", "/v1/networks/desk/threads", {"name": "triage", "title": "Triage",
                                                            "participants": [f"agent:ops@{ACME}"]})
    return node, token


def _generate(document: dict, where: Path) -> None:
    (where / "spec.json").write_text(json.dumps(document))
    (where / "config.yaml").write_text(_CONFIG)
    done = subprocess.run([str(Path(sys.executable).parent / "openapi-python-client"), "generate", "--path",
                           str(where / "spec.json"), "--output-path", str(where / "agentnet_generated"),
                           "--meta", "none", "--config", str(where / "config.yaml")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout, done.stdout  # every operation was understood


async def test_a_generated_client_makes_typed_calls_with_an_idempotency_key_per_call(tmp_path):
    node, token = await _world(tmp_path)
    try:
        document = await node.client(token, "GET", "/openapi.json")
        operations = [op for ops in document["paths"].values() for op in ops.values()]
        assert all(op.get("operationId") and op.get("tags") for op in operations)
        assert document["servers"][0]["url"] == "/"
        _generate(document, tmp_path)
        sys.path.insert(0, str(tmp_path))
        try:
            generated = importlib.import_module("agentnet_generated")
            post = importlib.import_module("agentnet_generated.api.networks.post_shared_message")
            read = importlib.import_module("agentnet_generated.api.networks.read_shared_thread")
            models = importlib.import_module("agentnet_generated.models")
        finally:
            sys.path.remove(str(tmp_path))

        client = generated.AuthenticatedClient(base_url=f"http://127.0.0.1:{node.ports['client']}", token=token)
        async with client:
            first = await post.asyncio_detailed("desk", "triage", client=client,
                                                body=models.PostSharedMessage(body="Ready."), idempotency_key="k-1")
            assert first.status_code == 201 and isinstance(first.parsed, models.SharedMessageOut)
            assert "Idempotent-Replayed" not in first.headers
            assert first.headers["RateLimit-Limit"] and int(first.headers["RateLimit-Remaining"]) >= 0
            again = await post.asyncio_detailed("desk", "triage", client=client,
                                                body=models.PostSharedMessage(body="Ready."), idempotency_key="k-1")
            assert again.headers["Idempotent-Replayed"] == "true" and again.parsed.id == first.parsed.id
            other = await post.asyncio_detailed("desk", "triage", client=client,
                                                body=models.PostSharedMessage(body="Ready."), idempotency_key="k-2")
            assert other.parsed.id != first.parsed.id

            page = await read.asyncio("desk", "triage", client=client)
            assert isinstance(page, models.SharedMessagePage)
            assert [m.id for m in page.messages] == [first.parsed.id, other.parsed.id]
            missing = await read.asyncio_detailed("desk", "nowhere", client=client)
            assert missing.status_code == 404 and isinstance(missing.parsed, models.ErrorBody)
            assert missing.parsed.error.code == "not_found" and "RateLimit-Remaining" in missing.headers
            bad = await post.asyncio_detailed("desk", "triage", client=client,
                                              body=models.PostSharedMessage(body="x"), idempotency_key="k" * 300)
            assert bad.status_code == 422 and isinstance(bad.parsed, models.InvalidRequestBody)
            assert bad.parsed.error.fields[0].field == "Idempotency-Key"
    finally:
        await node.stop()
