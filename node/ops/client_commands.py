"""A person's or agent's own commands beside `post` and `read`: whoami, reply, edit, delete,
react, upload, download, search, events and tail (follow the stream).

They find the node and the token as `post` and `read` do (`--client-url`, `--token`,
`--token-file`, else the data dir's settings and `$AGENTNET_TOKEN`) and print short text, or
the API's JSON with `--json`. `node.ops.admin_commands` registers them with the same builder,
so exit codes and error lines are the same as every other command's.
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.ops import output as out

if TYPE_CHECKING:
    from node.ops.admin_commands import Api

__all__ = ["MAX_UPLOAD_BYTES", "attach_files", "register_verbs", "structured_data"]

# A file named on the command line is read whole; a node takes at most 25 MiB.
MAX_UPLOAD_BYTES = 25 * 1024 * 1024


def _seg(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _message_path(args: argparse.Namespace) -> str:
    return f"/v1/networks/{_seg(args.network)}/threads/{_seg(args.thread)}/messages/{_seg(args.message)}"


def _usage(message: str) -> Exception:
    from node.ops.admin_commands import EXIT_USAGE, CliError

    return CliError(message, EXIT_USAGE)


def structured_data(raw: str | None) -> dict[str, Any] | None:
    """`--data JSON` as the object it must be."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise _usage(f"--data is not JSON: {e}") from None
    if not isinstance(value, dict):
        raise _usage("--data is a JSON object, e.g. '{\"ticket\": \"OPS-7\"}'")
    return value


async def _upload_one(api: Api, path: Path, name: str | None = None, media_type: str | None = None) -> dict:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_UPLOAD_BYTES + 1)
    except OSError as e:
        raise _usage(f"cannot read {path}: {e.strerror}") from None
    if len(data) > MAX_UPLOAD_BYTES:
        raise _usage(f"{path} is over {MAX_UPLOAD_BYTES} bytes, the most a node takes")
    guessed = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return await api.upload(name or path.name, data, media_type or guessed)


async def attach_files(api: Api, paths: list[Path] | None) -> list[str]:
    """Upload `--file` paths; their ids, in order, for a post's `attachments`."""
    return [(await _upload_one(api, path))["id"] for path in paths or []]


def _show(args: argparse.Namespace, data: Any, line: str) -> None:
    if args.json:
        out.print_json(data)
    else:
        print(out.clean(line))


async def _whoami(args: argparse.Namespace, api: Api) -> None:
    me = await api.call("GET", "/v1/whoami")
    _show(args, me, f"{me['id']} ({me['display_name']})")


async def _reply(args: argparse.Namespace, api: Api) -> None:
    path = f"/v1/networks/{_seg(args.network)}/threads/{_seg(args.thread)}/messages"
    body: dict[str, Any] = {"body": args.body, "reply_to": args.message}
    if args.mention:
        body["mentions"] = args.mention
    posted = await api.call("POST", path, body=body)
    _show(args, posted, f"Posted {posted['id']} ({posted['status']}), a reply to {args.message}")


async def _edit(args: argparse.Namespace, api: Api) -> None:
    edited = await api.call("PATCH", _message_path(args), body={"body": args.body})
    _show(args, edited, f"Edited {edited['id']}")


async def _delete(args: argparse.Namespace, api: Api) -> None:
    deleted = await api.call("DELETE", _message_path(args))
    _show(args, deleted, f"Deleted {deleted['id']} (a tombstone stays)")


async def _react(args: argparse.Namespace, api: Api) -> None:
    done = await api.call("POST", _message_path(args) + "/reactions",
                          body={"reaction": args.reaction, "removed": args.remove})
    _show(args, done, f"{'Took back' if done['removed'] else 'Reacted'} {done['reaction']} on {done['message']}")


async def _upload(args: argparse.Namespace, api: Api) -> None:
    made = await _upload_one(api, args.path, args.name, args.type)
    _show(args, made, f"{made['id']} {made['name']} ({made['content_type']}, {made['size']} bytes): attach it with "
                      f"`agentnet post ... --attach {made['id']}` within a day")


async def _download(args: argparse.Namespace, api: Api) -> None:
    data = await api.download(_message_path(args) + f"/files/{args.position}")
    try:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise _usage(f"{args.output} exists: choose another path") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    _show(args, {"path": str(args.output), "size": len(data)}, f"Wrote {len(data)} bytes to {args.output}")


async def _search(args: argparse.Namespace, api: Api) -> None:
    if args.threads:
        found = await api.call("GET", "/v1/shared-threads/search",
                               query={"q": args.query, "limit": args.limit, "network": args.network})
        lines = [f"{m['network']}/{m['thread']}  {m['id']}  {m['sender']}: {m['body']}" for m in found["items"]]
    else:
        found = await api.call("GET", "/v1/knowledge/search", query={"q": args.query, "limit": args.limit})
        lines = [f"{k['id']}  {k['title']}" for k in found["items"]]
    _show(args, found, "\n".join(lines) or "(nothing found)")


def _event_line(e: dict) -> str:
    where = f"{e['network']}/{e['thread']}" if e.get("network") else e.get("thread") or ""
    said = f": {e['body']}" if e.get("body") is not None else ""
    return out.clean(f"{e['cursor']}  {e['type']}  {where}  {e['sender']}{said}")


async def _events(args: argparse.Namespace, api: Api) -> None:
    query = {"limit": args.limit, "wait": min(max(args.wait, 0), 60), "after": args.after,
             **({"mentions": "me"} if args.mentions else {})}
    page = await api.call("GET", "/v1/events", query=query)
    _show(args, page, "\n".join([*(_event_line(e) for e in page["items"]), f"(next: --after {page['next_cursor']})"]))


async def _tail(args: argparse.Namespace, api: Api) -> None:
    async with api.agent_client() as client, client.stream(args.after) as events:
        async for event in events:
            data = event.model_dump(mode="json")
            print(json.dumps(data, ensure_ascii=False) if args.json else _event_line(data), flush=True)


def register_verbs(sub: argparse._SubParsersAction, leaf: Any) -> None:
    """Add the verbs with `leaf(sub, name, help, action, path=..., listener="client")`."""
    def verb(name: str, help_: str, action: Any, *, message: bool = False) -> argparse.ArgumentParser:
        parser = leaf(sub, name, help_, action, path=name, listener="client")
        if message:
            for positional in ("network", "thread", "message"):
                parser.add_argument(positional)
        return parser

    verb("whoami", "who the token is: its participant id and name", _whoami)
    p = verb("reply", "answer a message of a shared thread: NETWORK THREAD MESSAGE BODY", _reply, message=True)
    p.add_argument("body")
    p.add_argument("--mention", action="append", metavar="PARTICIPANT", help="a participant it addresses; repeat")
    verb("edit", "replace the body of one of your own messages: NETWORK THREAD MESSAGE BODY", _edit,
         message=True).add_argument("body")
    verb("delete", "delete one of your own messages (a tombstone stays): NETWORK THREAD MESSAGE", _delete,
         message=True)
    p = verb("react", "acknowledge a message (seen, working): NETWORK THREAD MESSAGE REACTION", _react, message=True)
    p.add_argument("reaction")
    p.add_argument("--remove", action="store_true", help="take the reaction back")
    p = verb("upload", "keep a file on your node to attach to a post within a day (prints its id)", _upload)
    p.add_argument("path", type=Path)
    p.add_argument("--name", help="the name members see (default: the file's)")
    p.add_argument("--type", help="its media type (default: guessed from the name)")
    p = verb("download", "save a file of a message: NETWORK THREAD MESSAGE [POSITION] -o FILE", _download,
             message=True)
    p.add_argument("position", type=int, nargs="?", default=0, choices=range(8), metavar="POSITION")
    p.add_argument("-o", "--output", type=Path, required=True, help="where to write it (never overwritten)")
    p = verb("search", "search the knowledge you may read, or with --threads your shared threads' messages "
                       "(every word must match)", _search)
    p.add_argument("query")
    p.add_argument("--threads", action="store_true", help="search the messages of your shared threads instead")
    p.add_argument("--network", help="with --threads: one network's threads only")
    p.add_argument("--limit", type=int, default=10)
    p = verb("events", "your events after a cursor, once (messages, threads, attachments...)", _events)
    p.add_argument("--after", metavar="CURSOR", help="from an earlier answer (default: from now)")
    p.add_argument("--wait", type=int, default=0, help="seconds to wait for the first event (at most 60)")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--mentions", action="store_true", help="only messages that mention you")
    p = verb("tail", "follow your events as they come, one per line, until interrupted", _tail)
    p.add_argument("--after", metavar="CURSOR", help="resume after this cursor (default: from now)")
