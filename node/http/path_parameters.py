"""What a path parameter may hold, decided by its name, checked before any handler runs.

A route's `{network}` is a network name wherever it appears, so the type lives with the
name, in one table: the request parsing layer validates `request.match_info` against it (a
bad value is a 422 `invalid_request` naming the parameter, before a service sees it) and the
OpenAPI document publishes the same types' patterns. A value that passes is well formed, not
known to exist: the service still answers 404 for a name it does not hold. A route with a
parameter that is not in the table is refused when the application is built.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints, TypeAdapter, create_model

from federation.peering_messages import InviteId
from node.http.fields import EventId, Handle, ServerName, Slug, form

__all__ = ["PATH_PARAMETERS", "path_model", "path_parameter_schema"]

# Row ids: decimal, as the API writes them; 18 digits stay inside a signed 64-bit column.
RowId = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,18}$")]

PATH_PARAMETERS: dict[str, Any] = {
    "handle": Handle,        # a person's or agent's handle
    "name": Slug,            # a private thread
    "network": Slug,
    "thread": Slug,          # a shared thread of {network}
    "server": ServerName,    # another company's node
    "invite": InviteId,      # chosen by the host: any node's 16-64 url-safe characters
    "token_id": RowId,
    "webhook": RowId,
    "flag": RowId,           # a message the outbound guard flagged
    "session": RowId,        # a web app session (node.web.sessions)
    "item": RowId,           # a knowledge item
    "operator": Slug,        # a named operator (node.http.roles)
    "event": EventId,        # a message of {thread}
    "position": Annotated[str, StringConstraints(pattern=form(r"^[0-7]$", "a file's position in its message, 0-7"))],
}


class _PathModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


@cache
def path_model(names: tuple[str, ...]) -> type[BaseModel]:
    """A model with one field per named parameter (KeyError for a name without a type)."""
    unknown = [n for n in names if n not in PATH_PARAMETERS]
    if unknown:
        raise KeyError(f"path parameter(s) {unknown} have no type in node.http.path_parameters.PATH_PARAMETERS")
    fields: dict[str, Any] = {n: (PATH_PARAMETERS[n], ...) for n in names}
    return create_model("PathParameters", __base__=_PathModel, **fields)


@cache
def path_parameter_schema(name: str) -> dict:
    return TypeAdapter(PATH_PARAMETERS[name]).json_schema()
