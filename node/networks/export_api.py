"""Admin route for exporting a network's shared history (`node.networks.export`)."""

from __future__ import annotations

from aiohttp import web

from node.http.auth import current_admin
from node.http.io import respond
from node.http.openapi import Endpoint
from node.networks.export import ExportOut, NetworkExporter

__all__ = ["export_admin_endpoints"]


def export_admin_endpoints(exporter: NetworkExporter) -> list[Endpoint]:
    async def export(request: web.Request) -> web.Response:
        name = request.match_info["network"]
        return respond(await exporter.export(name, actor=current_admin(request)))

    return [
        Endpoint("GET", "/v1/networks/{network}/export", export,
                 "The network's sequenced history with the keys that verify it, for `agentnet verify` offline",
                 response=ExportOut, errors=(413,)),
    ]
