"""OAuth 2.0 Protected Resource Metadata (RFC 9728) for the client listener and its MCP endpoint.

Remote MCP hosts start from a 401: its `WWW-Authenticate: Bearer resource_metadata="..."` leads
them to this document, which says what the resource is, that it takes bearer tokens in the
`Authorization` header, and which scopes exist. The node is not an OAuth authorization server:
its tokens are issued by the company's operator (`agentnet agent create`, `agentnet agent
token issue`) and given to the host as a static bearer token, which MCP hosts accept. The
document names no authorization server unless the operator configures one
(`oauth_authorization_servers`), for a company that puts its own OAuth server in front of the
node (docs/agents.md says how that bridge works).
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from node.http.auth import SCOPES
from node.http.openapi import Endpoint

__all__ = ["METADATA_PATH", "ProtectedResource", "challenge", "resource_metadata_endpoints"]

METADATA_PATH = "/.well-known/oauth-protected-resource"


class ProtectedResource(BaseModel):
    resource: str = Field(description="the protected resource's URL")
    authorization_servers: list[str] = Field(default_factory=list,
                                             description="issuers of tokens for it; empty: the operator issues them")
    bearer_methods_supported: list[str]
    scopes_supported: list[str]
    resource_name: str


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def challenge(request: web.Request) -> str:
    """The `WWW-Authenticate` value of a 401 on this listener (the MCP path points at its own)."""
    suffix = "/mcp" if request.path.rstrip("/") == "/mcp" else ""
    return f'Bearer realm="agentnet", resource_metadata="{_origin(request)}{METADATA_PATH}{suffix}"'


def resource_metadata_endpoints() -> list[Endpoint]:
    def metadata(resource_path: str):
        async def handler(request: web.Request) -> web.Response:
            document = ProtectedResource(
                resource=_origin(request) + resource_path,
                bearer_methods_supported=["header"], scopes_supported=list(SCOPES),
                resource_name="Agent Network node (client API and MCP)")
            return web.json_response(document.model_dump(), headers={"Cache-Control": "max-age=3600"})

        return handler

    return [
        Endpoint("GET", METADATA_PATH, metadata("/"), "OAuth protected-resource metadata (RFC 9728) of this "
                 "listener", response=ProtectedResource, public=True, operation_id="protected_resource_metadata"),
        Endpoint("GET", METADATA_PATH + "/mcp", metadata("/mcp"), "OAuth protected-resource metadata of the MCP "
                 "endpoint", response=ProtectedResource, public=True, operation_id="mcp_resource_metadata"),
    ]
