"""`agentnet` commands for operators: each admin API action over HTTP, plus `post` and `read`
as a person or agent through the client API.

Where a command finds the node: `--admin-url` (or `--client-url` for post/read), else the
listener named in `DATA_DIR/agentnet.toml`; `--data-dir` defaults to `AGENTNET_DATA_DIR`, else
`.`. The admin token comes from `--admin-token`, `AGENTNET_ADMIN_TOKEN` or `DATA_DIR/admin.token`;
post and read use `--token` or `AGENTNET_TOKEN`. Output is a table unless `--json` is given,
which prints the API's JSON as it came. Tokens are printed only by the commands that make one.

Exit codes (the same as `agentnet init`/`run`):

    0  done
    1  the node could not do it: it answered 403, 404, 409, 410, 413, 429 or 5xx, or it
       could not be reached
    2  the command is wrong: bad arguments or settings, a request the node refused as
       malformed (400, 422), or a token it refused (401)

Errors are one line on stderr, `agentnet COMMAND: message (error_code)`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote, urlencode

from node.basics.errors import ConfigError

if TYPE_CHECKING:
    from node.client.agent_client import AgentClient
    from node.client.http import AgentNetError, NodeHttp
from node.ops import output as out
from node.ops.arguments import (
    ADMIN_TOKEN_FILE,
    DATA_DIR_HELP,
    data_dir,
    listener_url,
    parse_time,
    read_token_file,
    save_token,
)

__all__ = ["EXIT_CODES", "register"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_CODES = """exit codes:
  0  done
  1  the node could not do it (it answered an error such as 404 or 409, or is unreachable)
  2  wrong usage: bad arguments or settings, a malformed request (400/422), a refused token (401)
errors are one line on stderr."""

# An invite or an accept waits for the other company's node; a minute covers a slow peer.
_TIMEOUT_S = 60
_USAGE_STATUSES = {400, 401, 422}
SCOPES = ("read", "post", "knowledge:read", "webhooks", "threads")
_SECRETS = {"admin_token", "token", "secret"}  # never formatted into a confirmation line


class CliError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _seg(value: str) -> str:
    return quote(value, safe="")


class Api:
    """One listener of one node, with one bearer token, through the one client for a node's own
    APIs (`node.client.http`), tried once; its errors become `CliError`."""

    def __init__(self, listener: str, base_url: str, token: str) -> None:
        self.listener, self.base_url, self._token = listener, base_url.rstrip("/"), token
        self._http: NodeHttp | None = None

    async def __aenter__(self) -> Self:
        from node.client.http import NO_RETRIES, NodeHttp  # aiohttp: for commands that call a node only

        self._http = NodeHttp(self.base_url, self._token, timeout=_TIMEOUT_S, retry=NO_RETRIES)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()

    async def call(self, method: str, path: str, body: Any = None, query: dict | None = None,
                   headers: dict | None = None) -> Any:
        from node.client.http import AgentNetError

        assert self._http is not None, "an Api is used inside `async with`"
        try:
            return await self._http.call(method, path, params=query, json_body=body, headers=headers, once=True)
        except AgentNetError as e:
            raise self._refusal(e) from None

    async def upload(self, name: str, data: bytes, media_type: str) -> Any:
        """POST /v1/files with the raw bytes (the client listener)."""
        from node.client.http import AgentNetError, refusal

        assert self._http is not None, "an Api is used inside `async with`"
        try:
            status, body, _ = await self._http.raw("POST", "/v1/files", params={"name": name}, data=data,
                                                   headers={"Content-Type": media_type})
            answer = json.loads(body) if body else None
        except AgentNetError as e:
            raise self._refusal(e) from None
        except ValueError:
            raise CliError(f"the node's answer to the upload is not JSON (HTTP {status})") from None
        if status >= 400:
            raise self._refusal(refusal(status, answer, None))
        return answer

    async def download(self, path: str) -> bytes:
        """A file's bytes (the client listener)."""
        from node.client.http import AgentNetError, refusal

        assert self._http is not None, "an Api is used inside `async with`"
        try:
            status, body, _ = await self._http.raw("GET", path)
        except AgentNetError as e:
            raise self._refusal(e) from None
        if status >= 400:
            try:
                answer = json.loads(body)
            except ValueError:
                answer = None
            raise self._refusal(refusal(status, answer, None))
        return body

    def agent_client(self) -> AgentClient:
        """The Python client on the same listener and token (for the event stream)."""
        from node.client.agent_client import AgentClient

        return AgentClient(self.base_url, self._token)

    def _refusal(self, error: AgentNetError) -> CliError:
        if error.code == "invalid_url":
            return CliError(f"{self.base_url} is not a valid URL", EXIT_USAGE)
        if error.status == 0:
            return CliError(f"cannot reach the {self.listener} listener at {self.base_url}: is `agentnet run` "
                            f"running? ({out.clean(error.message)})")
        said = ("; ".join(f"{f.get('field')}: {f.get('message')}" for f in error.fields) if error.fields
                else error.message)  # each refused field once
        message = f"{said} ({error.code})"
        if error.status == 401:
            where = ("check --admin-token, AGENTNET_ADMIN_TOKEN or DATA_DIR/admin.token"
                     if self.listener == "admin" else "check --token or AGENTNET_TOKEN")
            message = f"the token was refused: {message}; {where}"
        return CliError(out.clean(message), EXIT_USAGE if error.status in _USAGE_STATUSES else EXIT_FAILED)


def _check_data_dir(args: argparse.Namespace, listener: str) -> None:
    """When the listener's address must come from the data dir's settings, say so if there is
    no node there, before anything else goes wrong for that reason (a missing token, say)."""
    if getattr(args, f"{listener}_url", None):
        return  # only a token may come from the data dir: its own check names the file
    found = data_dir(args)
    if not (found / "agentnet.toml").is_file():
        where = "does not exist" if not found.exists() else "holds no node (no agentnet.toml)"
        raise CliError(f"the data dir {found} {where}: pass --data-dir DIR or set AGENTNET_DATA_DIR "
                       f"(or --{listener}-url with a token)", EXIT_USAGE)


def _listener_url(args: argparse.Namespace, listener: str) -> str:
    explicit = getattr(args, f"{listener}_url", None)
    if explicit:
        return explicit
    try:
        return listener_url(data_dir(args), listener)
    except ConfigError as e:
        raise CliError(f"{e} (or pass --{listener}-url)", EXIT_USAGE) from None


def _admin_token(args: argparse.Namespace) -> str:
    token = args.admin_token or os.environ.get("AGENTNET_ADMIN_TOKEN")
    path = data_dir(args) / ADMIN_TOKEN_FILE
    if not token and path.is_file():
        token = read_token_file(path)
    if not token:
        raise CliError(f"no admin token: pass --admin-token, set AGENTNET_ADMIN_TOKEN or write it to {path}",
                       EXIT_USAGE)
    return token


def _client_token(args: argparse.Namespace) -> str:
    token = args.token or os.environ.get("AGENTNET_TOKEN")
    if not token and args.token_file is not None:
        try:
            token = read_token_file(args.token_file)
        except OSError as e:
            raise CliError(f"cannot read --token-file {args.token_file}: {e.strerror}", EXIT_USAGE) from None
    if not token:
        raise CliError("no token: pass --token or --token-file, or set AGENTNET_TOKEN (the agent's or person's "
                       "token)", EXIT_USAGE)
    return token


Action = Callable[[argparse.Namespace, Api], Awaitable[None]]


def _handler(name: str, listener: str, action: Action) -> Callable[[argparse.Namespace], Awaitable[int]]:
    async def handler(args: argparse.Namespace) -> int:
        try:
            _check_data_dir(args, listener)
            token = _admin_token(args) if listener == "admin" else _client_token(args)
            async with Api(listener, _listener_url(args, listener), token) as api:
                await action(args, api)
        except CliError as e:
            print(f"agentnet {name}: {e}", file=sys.stderr)
            return e.exit_code
        return EXIT_OK

    return handler


Render = Callable[[Any, argparse.Namespace], str]


def _show(args: argparse.Namespace, data: Any, render: Render) -> None:
    if getattr(args, "kind", None) and getattr(args, "token_file", None) is not None and isinstance(data, dict) \
            and "token" in data:
        data = _saved_token(args, data)
    if args.json:
        out.print_json(data)
    else:
        print(render(data, args))


async def _pages(api: Api, path: str, key: str, cursor: str, query: dict, label: str) -> dict:
    """Every page of a cursor-paged list, joined into one answer of the same shape."""
    items: list = []
    progress = out.Progress(label)
    try:
        while True:
            page = await api.call("GET", path, query=query)
            items.extend(page[key])
            progress.update(len(items))
            if not page.get("next_cursor") or not page[key]:
                return {key: items, "next_cursor": None}
            query = {**query, cursor: page["next_cursor"]}
    finally:
        progress.done()


# --- rendering -----------------------------------------------------------------------------

def _items(columns: list[out.Column], empty: str) -> Render:
    return lambda data, args: out.table(data["items"], columns, empty=empty)


def _token_made(what: str) -> Render:
    def render(data: Any, args: argparse.Namespace) -> str:
        if getattr(args, "token_file", None) is None:
            return out.token_made(what, data)
        return out.token_made(what, data).replace("Token (shown once; store it now):\n", "Token: ")

    return render


def _saved_token(args: argparse.Namespace, data: dict) -> dict:
    """With --token-file: the new token saved there (0600), and the answer without it."""
    try:
        path = save_token(args.token_file, data["token"])
    except OSError as e:
        raise CliError(f"the token was made but not saved: {args.token_file}: {e.strerror}; run "
                       f"`agentnet {args.kind} token rotate {args.handle}` for another", EXIT_FAILED) from None
    return {**data, "token": f"(saved to {path}, mode 0600)"}


def _said(line: str) -> Render:
    """A one-line confirmation naming fields of the answer or, failing that, of the arguments."""
    def render(data: Any, args: argparse.Namespace) -> str:
        values = {**vars(args), **(data if isinstance(data, dict) else {})}
        return line.format(**{k: out.clean(v) for k, v in values.items() if k not in _SECRETS})

    return render


# --- actions -------------------------------------------------------------------------------

def _get(path: Callable[[argparse.Namespace], str], render: Render) -> Action:
    async def action(args: argparse.Namespace, api: Api) -> None:
        _show(args, await api.call("GET", path(args)), render)

    return action


def _path_to(head: Callable[[argparse.Namespace], str], tail: str) -> Callable[[argparse.Namespace], str]:
    """A path built from the arguments, then a fixed `tail` (a loop's verb, bound here)."""
    return lambda args: head(args) + tail


def _post(path: Callable[[argparse.Namespace], str], render: Render,
          body: Callable[[argparse.Namespace], dict | None] = lambda a: None) -> Action:
    return _send("POST", path, render, body)


def _send(method: str, path: Callable[[argparse.Namespace], str], render: Render,
          body: Callable[[argparse.Namespace], dict | None] = lambda a: None) -> Action:
    async def action(args: argparse.Namespace, api: Api) -> None:
        _show(args, await api.call(method, path(args), body(args)), render)

    return action


def _token_body(args: argparse.Namespace) -> dict:
    body: dict = {}
    if args.scope:
        body["scopes"] = args.scope
    if args.expires_in is not None:
        body["expires_in_seconds"] = args.expires_in
    return body


def _create_principal_body(args: argparse.Namespace) -> dict:
    body = {"handle": args.handle, "display_name": args.display_name or args.handle, "profile": args.profile}
    if args.scope:
        body["scopes"] = args.scope
    if args.expires_in is not None:
        body["token_expires_in_seconds"] = args.expires_in
    return body


async def _thread_list(args: argparse.Namespace, api: Api) -> None:
    if args.network:
        threads = (await api.call("GET", f"/v1/networks/{_seg(args.network)}"))["threads"]
    else:
        threads = [t for n in (await api.call("GET", "/v1/networks"))["items"] for t in n["threads"]]
    _show(args, {"items": threads}, _items(out.THREAD_COLUMNS, "(no shared threads)"))


async def _knowledge_add(args: argparse.Namespace, api: Api) -> None:
    if (args.body is None) == (args.body_file is None):
        raise CliError("give the text with exactly one of --body or --body-file", EXIT_USAGE)
    try:
        text = args.body if args.body is not None else (
            sys.stdin.read() if args.body_file == "-" else Path(args.body_file).read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise CliError(f"cannot read {args.body_file}: {e}", EXIT_USAGE) from None
    made = await api.call("POST", "/v1/knowledge", {"title": args.title, "body": text, "readers": args.reader})
    _show(args, made, _said("Added knowledge item {id}: {title}"))


def _paged(path: str, key: str, cursor: str, label: str, render: Render,
           filters: Callable[[argparse.Namespace], dict] = lambda a: {}) -> Action:
    async def action(args: argparse.Namespace, api: Api) -> None:
        query = {"limit": args.limit, cursor: getattr(args, cursor), **filters(args)}
        if args.all:
            data = await _pages(api, path, key, cursor, query, label)
        else:
            data = await api.call("GET", path, query=query)
        _show(args, data, render)
        if not args.json and data.get("next_cursor"):
            print(f"(more: --{cursor} {data['next_cursor']}, or --all)", file=sys.stderr)

    return action


def _audit_filters(args: argparse.Namespace) -> dict:
    names = ("actor", "action", "network", "partner", "since", "until")
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


async def _verify_audit(args: argparse.Namespace, api: Api) -> None:
    check = await api.call("GET", "/v1/audit/verify", query={"anchor": args.anchor} if args.anchor else None)
    _show(args, check, lambda c, a: (
        f"The audit log holds: {c['entries']} entries, head {c['head']}" if c["ok"] else
        f"The audit log is broken at entry {c['broken_at']}: {c['problem']}"))
    if not check["ok"]:
        raise CliError(f"the audit log does not verify at entry {check['broken_at']}", EXIT_FAILED)


def _yes_no(text: str) -> bool:
    if text.lower() in ("yes", "true", "on"):
        return True
    if text.lower() in ("no", "false", "off"):
        return False
    raise argparse.ArgumentTypeError(f"say yes or no, not {text!r}")


async def _policy_node(args: argparse.Namespace, api: Api) -> None:
    current = (await api.call("GET", "/v1/policy"))["node"]
    if args.accept_invites is not None:
        current["accept_invites"] = args.accept_invites
    if args.clear_auto_accept:
        current["auto_accept"] = []
    current["refuse_invites_from"] = sorted({*current["refuse_invites_from"], *(args.refuse_invites_from or [])}
                                            - set(args.allow_invites_from or []))
    current["a2a_agents"] = sorted({*current.get("a2a_agents", []), *(args.a2a_agent or [])}
                                   - set(args.no_a2a_agent or []))
    if args.retain_days_after_close is not None:
        days = args.retain_days_after_close
        current["retain_days_after_close"] = None if days == "never" else int(days)
    current["auto_accept"] = sorted({*current["auto_accept"], *(args.auto_accept or [])})
    changed = await api.call("PUT", "/v1/policy/node", current)
    _show(args, changed, lambda d, a: out.policy(d))


def _partner_changes(args: argparse.Namespace, current: dict) -> dict:
    if args.agents is not None:
        current["agents"] = args.agents
    if args.max_message_chars is not None:
        current["max_message_chars"] = args.max_message_chars
    if args.threads is not None:
        current["threads"] = args.threads
    if args.max_events_per_minute is not None:
        limit = args.max_events_per_minute
        current["max_events_per_minute"] = None if limit == "none" else int(limit)
    if args.files is not None:
        current["files"] = args.files
    if args.max_file_bytes is not None:
        current["max_file_bytes"] = args.max_file_bytes
    if args.file_types is not None:
        current["file_types"] = None if args.file_types == "any" else [t for t in args.file_types.split(",") if t]
    return current


async def _policy_partner(args: argparse.Namespace, api: Api) -> None:
    path = f"/v1/policy/partners/{_seg(args.server)}"
    current = await api.call("GET", path)
    if any(getattr(args, o) is not None for o in _PARTNER_OPTIONS):
        current = await api.call("PUT", path, _partner_changes(args, current["policy"]))
    _show(args, current, lambda d, a: out.partner_policy(d))


async def _policy_default(args: argparse.Namespace, api: Api) -> None:
    current = (await api.call("GET", "/v1/policy"))["default_partner"]
    changed = await api.call("PUT", "/v1/policy/partners", _partner_changes(args, current))
    _show(args, changed, lambda d, a: out.policy(d))


async def _guard_set(args: argparse.Namespace, api: Api) -> None:
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8")
        settings = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CliError(f"cannot read guard settings from {args.file}: {e}", EXIT_USAGE) from None
    _show(args, await api.call("PUT", "/v1/policy/guard", settings), lambda d, a: out.guard(d))


async def _guard_check(args: argparse.Namespace, api: Api) -> None:
    _show(args, await api.call("POST", "/v1/guard/check", {"text": args.text}), lambda d, a: out.guard_check(d))


async def _guard_review(args: argparse.Namespace, api: Api) -> None:
    reviewed = await api.call("POST", f"/v1/guard/flags/{_seg(args.flag)}/review",
                              {"verdict": args.verdict, "note": args.note})
    _show(args, reviewed, _said("Flag {id} reviewed: {verdict}"))


def _messages_path(args: argparse.Namespace) -> str:
    if args.network:
        return f"/v1/networks/{_seg(args.network)}/threads/{_seg(args.thread)}/messages"
    return f"/v1/threads/{_seg(args.thread)}/messages"


def _or_shared(args: argparse.Namespace, error: CliError) -> CliError:
    """A private thread that is not there may be a shared one named without its network."""
    if args.network is None and "(not_found)" in str(error):
        return CliError(f"{error}; a shared thread needs --network NETWORK", error.exit_code)
    return error


async def _thread_call(args: argparse.Namespace, api: Api, method: str, path: str, **kwargs: Any) -> Any:
    try:
        return await api.call(method, path, **kwargs)
    except CliError as e:
        raise _or_shared(args, e) from None


async def _post_message(args: argparse.Namespace, api: Api) -> None:
    from node.ops.client_commands import attach_files, structured_data

    body: dict[str, Any] = {"body": sys.stdin.read() if args.body == "-" else args.body}
    shared = {"mentions": args.mention, "reply_to": args.reply_to, "data": structured_data(args.data),
              "attachments": [*(args.attach or []), *await attach_files(api, args.file)] or None}
    given = {k: v for k, v in shared.items() if v}
    if given and args.network is None:
        raise CliError("--mention, --reply-to, --attach, --file and --data are for shared threads: give --network",
                       EXIT_USAGE)
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    posted = await _thread_call(args, api, "POST", _messages_path(args), body={**body, **given}, headers=headers)
    _show(args, posted, lambda m, a: f"Posted {m['id']} in {a.thread}"
          + (f" (seq {m['seq']})" if m.get("seq") is not None else f" ({m['status']})" if m.get("status") else ""))


async def _accept_invite(args: argparse.Namespace, api: Api) -> None:
    invite_id = args.id
    if (invite_id is None) == (args.network is None):
        raise CliError("name the invite: its id, or --network NAME for the pending invite to that network",
                       EXIT_USAGE)
    if invite_id is None:
        invites = (await api.call("GET", "/v1/invites"))["items"]
        pending = [i for i in invites if i["direction"] == "incoming" and i["status"] == "pending"
                   and i["network"] == args.network]
        if not pending:
            raise CliError(f"no pending invite to {args.network} here (`agentnet invites` lists them; an invite "
                           f"arrives when the host sends it)")
        invite_id = pending[0]["id"]
    accepted = await api.call("POST", f"/v1/invites/{_seg(invite_id)}/accept")
    _show(args, accepted, _said("Accepted invite {id}: joined {network} hosted by {host} (key {fingerprint})"))


async def _export(args: argparse.Namespace, api: Api) -> None:
    from node.ops.export_commands import save_export

    if (args.network is None) == (not args.private):
        raise CliError("name a NETWORK to export its shared history, or pass --private for the company's private "
                       "side (not both)", EXIT_USAGE)
    default = "private.agentnet-private.json" if args.private else f"{args.network}.agentnet-export.json"
    path = args.output or Path(default)
    if path.exists() and not args.force:
        raise CliError(f"{path} exists: pass --force to replace it, or -o another file", EXIT_USAGE)
    document = await api.call("GET", "/v1/export/private" if args.private else f"{_n(args)}/export")
    try:
        size = save_export(path, document, force=args.force)
    except FileExistsError:
        raise CliError(f"{path} exists: pass --force to replace it, or -o another file", EXIT_USAGE) from None
    except OSError as e:
        raise CliError(f"cannot write {path}: {e.strerror or e}", EXIT_USAGE) from None
    if args.private:
        _show(args, {"file": str(path), "bytes": size, "server_name": document["company"]["server_name"],
                     "audit_head": document["audit"]["head"]},
              lambda d, a: f"Exported the private side of {out.clean(d['server_name'])} to {out.clean(d['file'])} "
                           f"(mode 0600, {d['bytes']} bytes; audit head {d['audit_head']['seq']}:"
                           f"{d['audit_head']['hash']}).\nIt holds token digests and webhook secrets: keep it as "
                           f"you keep the database. Restore it with: agentnet import {out.clean(d['file'])}")
        return
    done = {"file": str(path), "bytes": size, "network": document["network"], "head_seq": document["head"]["seq"],
            "companies": sorted(document["keys"])}
    _show(args, done, lambda d, a: f"Exported {out.clean(d['network'])} (events 1 to {d['head_seq']}, companies "
          f"{out.clean(d['companies'])}) to {out.clean(d['file'])} (mode 0600, {d['bytes']} bytes).\n"
          f"Check it anywhere, with no node: agentnet verify {out.clean(d['file'])}")


async def _read(args: argparse.Namespace, api: Api) -> None:
    try:
        await _paged(_messages_path(args), "items", "after", "messages",
                     lambda d, a: out.message_log(d["items"]))(args, api)
    except CliError as e:
        raise _or_shared(args, e) from None


# --- parsers -------------------------------------------------------------------------------

def _common(listener: str) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    common.add_argument("--json", action="store_true", help="print the API's JSON as it came")
    if listener == "admin":
        common.add_argument("--admin-url", help="admin listener, e.g. http://127.0.0.1:8701 (default: from settings)")
        common.add_argument("--admin-token",
                            help="default: $AGENTNET_ADMIN_TOKEN, else the file DATA_DIR/admin.token")
    else:
        common.add_argument("--client-url", help="client listener, e.g. http://127.0.0.1:8702 (default: from settings)")
        common.add_argument("--token", help="the agent's or person's token (default: $AGENTNET_TOKEN)")
        common.add_argument("--token-file", type=Path, metavar="FILE",
                            help="read the token from FILE (as `agent create --token-file` saved it)")
    return common


class _Builder:
    def __init__(self) -> None:
        self.parents = {"admin": [_common("admin")], "client": [_common("client")]}

    def leaf(self, sub, name: str, help_: str, action: Action, *, path: str, listener: str = "admin"):
        parser = sub.add_parser(name, help=help_, description=help_, parents=self.parents[listener],
                                epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.set_defaults(handler=_handler(path, listener, action))
        return parser


def _group(sub, name: str, help_: str):
    parser = sub.add_parser(name, help=help_, description=help_, epilog=EXIT_CODES,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser.add_subparsers(dest=f"{name.replace('-', '_')}_command", required=True, metavar="COMMAND")


def _token_options(parser: argparse.ArgumentParser, kind: str) -> None:
    parser.add_argument("--scope", action="append", choices=SCOPES,
                        help="repeat for several (default: all but threads, which lets it open threads and add "
                             "participants)")
    parser.add_argument("--expires-in", type=int, metavar="SECONDS", help="default: never")
    parser.add_argument("--token-file", type=Path, metavar="FILE",
                        help="save the token to FILE (mode 0600) instead of printing it; `post` and `read` take "
                             "the same --token-file")
    parser.set_defaults(kind=kind)


def _register_principals(sub, b: _Builder, kind: str, plural: str):
    group = _group(sub, kind, f"{plural}: create, list, disable, enable, tokens")
    base = f"/v1/{plural}"
    an = "an" if kind[0] in "aeiou" else "a"
    p = b.leaf(group, "create", f"create {an} {kind}; prints its token once",
               _post(lambda a: base, _token_made("Created"), _create_principal_body), path=f"{kind} create")
    p.add_argument("handle")
    p.add_argument("--display-name", help="default: the handle")
    p.add_argument("--profile", default="", help="a few lines about the principal")
    _token_options(p, kind)
    b.leaf(group, "list", f"list {plural}", _get(lambda a: base, _items(out.PRINCIPAL_COLUMNS, f"(no {plural})")),
           path=f"{kind} list")
    for verb in ("disable", "enable"):
        p = b.leaf(group, verb, f"{verb} {an} {kind}" + (": its tokens stop working at once" if verb == "disable" else ""),
                   _post(_path_to(lambda a: f"{base}/{_seg(a.handle)}", f"/{verb}"), _said(f"{{id}} {verb}d")),
                   path=f"{kind} {verb}")
        p.add_argument("handle")
    tokens = _group(group, "token", f"{an} {kind}'s tokens")
    p = b.leaf(tokens, "rotate", "revoke every token and print a new one",
               _post(lambda a: f"{base}/{_seg(a.handle)}/token", _token_made("Every earlier token revoked for"),
                     _token_body), path=f"{kind} token rotate")
    p.add_argument("handle")
    _token_options(p, kind)
    p = b.leaf(tokens, "issue", "issue one more token and print it",
               _post(lambda a: f"{base}/{_seg(a.handle)}/tokens", _token_made("New token for"), _token_body),
               path=f"{kind} token issue")
    p.add_argument("handle")
    _token_options(p, kind)
    p = b.leaf(tokens, "list", "list tokens (never the secrets)",
               _get(lambda a: f"{base}/{_seg(a.handle)}/tokens", _items(out.TOKEN_COLUMNS, "(no tokens)")),
               path=f"{kind} token list")
    p.add_argument("handle")
    p = b.leaf(tokens, "revoke", "revoke one token",
               _post(lambda a: f"{base}/{_seg(a.handle)}/tokens/{_seg(a.token_id)}/revoke",
                     _said("Revoked token {id}")), path=f"{kind} token revoke")
    p.add_argument("handle")
    p.add_argument("token_id")
    p = b.leaf(group, "rename", f"change {an} {kind}'s display name or profile here",
               _send("PATCH", lambda a: f"{base}/{_seg(a.handle)}", _said("{id} is now {display_name}"),
                     lambda a: {k: v for k, v in (("display_name", a.display_name), ("profile", a.profile))
                                if v is not None}), path=f"{kind} rename")
    p.add_argument("handle")
    p.add_argument("--display-name")
    p.add_argument("--profile")
    b.leaf(tokens, "revoke-all", f"revoke every token at once (a kill switch; the {kind} stays enabled)",
           _post(lambda a: f"{base}/{_seg(a.handle)}/tokens/revoke",
                 lambda d, a: f"Every token of {kind}:{_clean_handle(a)} is revoked ({len(d['items'])} tokens, "
                              f"{sum(t['active'] for t in d['items'])} active)"),
           path=f"{kind} token revoke-all").add_argument("handle")
    return group


def _clean_handle(args: argparse.Namespace) -> str:
    return out.clean(args.handle)


def _n(args: argparse.Namespace) -> str:
    return f"/v1/networks/{_seg(args.network)}"


def _register_networks(sub, b: _Builder) -> None:
    net = _group(sub, "network", "networks this node hosts or belongs to")
    p = b.leaf(net, "create", "create a network hosted here",
               _post(lambda a: "/v1/networks", _said("Created network {name} (hosted here)"),
                     lambda a: {"name": a.network, "title": a.title, "history_visible": not a.no_history}),
               path="network create")
    p.add_argument("network")
    p.add_argument("--title", required=True)
    p.add_argument("--no-history", action="store_true", help="companies admitted later do not see earlier events")
    b.leaf(net, "list", "list networks (--archived: those put away)",
           _get(lambda a: "/v1/networks" + ("?archived=true" if a.archived else ""),
                _items(out.NETWORK_COLUMNS, "(no networks)")),
           path="network list").add_argument("--archived", action="store_true")
    b.leaf(net, "show", "a network's members, participants and threads", _get(_n, lambda d, a: out.network_detail(d)),
           path="network show").add_argument("network")
    p = b.leaf(net, "invite", "invite a company (sent to its node at once)",
               _post(lambda a: _n(a) + "/invites", _said("Invited {server} to {network}: invite {id}, {status}"),
                     lambda a: {"server": a.server, **({"endpoint": a.endpoint} if a.endpoint else {})}),
               path="network invite")
    p.add_argument("network")
    p.add_argument("server")
    p.add_argument("--endpoint", help="https URL of the company's node (default https://SERVER)")
    for verb, line, help_ in (("close", "Closed network {name}", "close the network (host only)"),
                              ("leave", "Left network {name}", "leave the network (members)"),
                              ("resume", "Trying {name} again now", "try a halted network again (after fixing why)"),
                              ("freeze", "Froze {name}: this company's people and agents cannot act in it",
                               "a kill switch: this company's people and agents cannot act in the network"),
                              ("unfreeze", "Unfroze {name}", "undo `network freeze`"),
                              ("archive", "Archived {name}", "put a closed network away: out of the lists, kept whole"),
                              ("unarchive", "Brought {name} back", "undo `network archive`")):
        b.leaf(net, verb, help_, _post(_path_to(_n, f"/{verb}"), _said(line)),
               path=f"network {verb}").add_argument("network")
    p = b.leaf(net, "remove", "remove a company (host only)",
               _post(lambda a: f"{_n(a)}/members/{_seg(a.server)}/remove", _said("Removed {server} from {network}")),
               path="network remove")
    p.add_argument("network")
    p.add_argument("server")

    p = b.leaf(sub, "export", "write a network's shared history with its signatures and keys to a file (0600), "
                             "for `agentnet verify` anywhere; --private: the company's private side, for "
                             "`agentnet import`", _export, path="export")
    p.add_argument("network", nargs="?", help="the network (not with --private)")
    p.add_argument("--private", action="store_true",
                   help="export the private side instead: people, agents, token digests, private threads, "
                        "knowledge, webhooks (with their secrets), policy, audit log")
    p.add_argument("-o", "--output", type=Path, metavar="FILE",
                   help="default: NETWORK.agentnet-export.json here (--private: private.agentnet-private.json)")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")

    b.leaf(sub, "invites", "invites sent and received, with key fingerprints",
           _get(lambda a: "/v1/invites", _items(out.INVITE_COLUMNS, "(no invites)")), path="invites")
    inv = _group(sub, "invite", "answer an invite (compare its fingerprint out of band first)")
    accept = b.leaf(inv, "accept", "accept: pins the host's key and joins the network", _accept_invite,
                    path="invite accept")
    accept.add_argument("id", nargs="?", help="the invite's id (`agentnet invites` lists them)")
    accept.add_argument("--network", help="instead of an id: the pending invite to this network")
    b.leaf(inv, "withdraw", "withdraw an invite this node sent (not answered yet)",
           _post(lambda a: f"/v1/invites/{_seg(a.id)}/withdraw", _said("Withdrew invite {id} to {network}")),
           path="invite withdraw").add_argument("id")
    b.leaf(inv, "decline", "decline an invite",
           _post(lambda a: f"/v1/invites/{_seg(a.id)}/decline", _said("Declined invite {id} to {network}")),
           path="invite decline").add_argument("id")

    for verb, suffix in (("attach", "/participants"), ("detach", "/participants/detach")):
        direction = "to" if verb == "attach" else "from"
        p = b.leaf(sub, verb, f"{verb} one of this company's people or agents {direction} a network",
                   _post(_path_to(_n, suffix),
                         _said(f"{verb.title()}ed {{participant}} {direction} {{network}}"),
                         lambda a: {"participant": a.participant}), path=verb)
        p.add_argument("network")
        p.add_argument("participant", help="agent:HANDLE or person:HANDLE")

    th = _group(sub, "thread", "shared threads on a network")
    p = b.leaf(th, "open", "open a shared thread (host) with named participants",
               _post(lambda a: _n(a) + "/threads", _said("Opened thread {thread} in {network}"),
                     lambda a: {"name": a.thread, "title": a.title, "participants": a.participant}),
               path="thread open")
    p.add_argument("network")
    p.add_argument("thread")
    p.add_argument("--title", required=True)
    p.add_argument("--participant", action="append", required=True, help="kind:handle@server; repeat")
    p = b.leaf(th, "add", "add participants to a shared thread (host, or the company that opened it)",
               _post(lambda a: f"{_n(a)}/threads/{_seg(a.thread)}/participants",
                     _said("Added to thread {thread} in {network}"), lambda a: {"participants": a.participant}),
               path="thread add")
    p.add_argument("network")
    p.add_argument("thread")
    p.add_argument("--participant", action="append", required=True, help="kind:handle@server; repeat")
    p = b.leaf(th, "silence", "host only: let only people write in a shared thread (--lift: agents again)",
               _post(lambda a: f"{_n(a)}/threads/{_seg(a.thread)}/silence",
                     lambda d, a: f"{'Agents may write again' if a.lift else 'Only people may write'} in "
                                  f"{out.clean(a.thread)}",
                     lambda a: {"agents": not a.lift}), path="thread silence")
    p.add_argument("network")
    p.add_argument("thread")
    p.add_argument("--lift", action="store_true", help="let agents write again")
    p = b.leaf(th, "close", "close a shared thread (host, or the company that opened it; read-only afterwards)",
               _post(lambda a: f"{_n(a)}/threads/{_seg(a.thread)}/close", _said("Closed thread {thread} in {network}")),
               path="thread close")
    p.add_argument("network")
    p.add_argument("thread")
    b.leaf(th, "list", "shared threads, of one network or all", _thread_list,
           path="thread list").add_argument("network", nargs="?")

    b.leaf(sub, "alerts", "what the operator must look at: key conflicts, halted networks",
           _get(lambda a: "/v1/alerts", _items(out.ALERT_COLUMNS, "(no alerts)")), path="alerts")
    b.leaf(sub, "peers", "peers: keys, queue depth, last success and error, next retry",
           _get(lambda a: "/v1/peers", _items(out.PEER_COLUMNS, "(no peers)")), path="peers")
    for verb, help_ in (("block", "block a server: nothing in, nothing out"), ("unblock", "unblock a server")):
        b.leaf(sub, verb, help_, _post(_path_to(lambda a: f"/v1/peers/{_seg(a.server)}", f"/{verb}"),
                                       _said(f"{verb.title()}ed {{server}}")), path=verb).add_argument("server")


_PARTNER_OPTIONS = ("agents", "max_message_chars", "threads", "max_events_per_minute", "files", "max_file_bytes",
                    "file_types")


def _partner_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agents", type=_yes_no, metavar="yes|no",
                        help="may its participants be agents (in networks hosted here)")
    parser.add_argument("--max-message-chars", type=int, metavar="N", help="the longest message it may send")
    parser.add_argument("--max-events-per-minute", metavar="N|none",
                        help="events it may submit to networks hosted here, a minute (none: the node's limits only)")
    parser.add_argument("--files", type=_yes_no, metavar="yes|no",
                        help="may files cross with it (its files fetched here, this node's served to it)")
    parser.add_argument("--max-file-bytes", type=int, metavar="N", help="the largest file it may send")
    parser.add_argument("--file-types", metavar="TYPE,...|any",
                        help="media types it may send files of, e.g. application/pdf,image/* (any: no limit)")
    parser.add_argument("--threads", choices=("auto", "ask"),
                        help="ask: threads it opens naming this company's participants wait for `agentnet consent`")


def _register_policy(sub, b: _Builder) -> None:
    po = _group(sub, "policy", "what this node accepts from other companies; changes apply at once and are audited")
    b.leaf(po, "show", "the whole policy: node-wide, the partners default, each partner's",
           _get(lambda a: "/v1/policy", lambda d, a: out.policy(d)), path="policy show")
    p = b.leaf(po, "node", "node-wide: invites (options not given stay as they are)", _policy_node,
               path="policy node")
    p.add_argument("--accept-invites", type=_yes_no, metavar="yes|no",
                   help="no: every invite is refused, except from --auto-accept servers")
    p.add_argument("--auto-accept", action="append", metavar="SERVER",
                   help="accept this server's invites without an operator; repeat")
    p.add_argument("--clear-auto-accept", action="store_true", help="empty the auto-accept list first")
    p.add_argument("--refuse-invites-from", action="append", metavar="SERVER",
                   help="always refuse this server's invites; repeat")
    p.add_argument("--allow-invites-from", action="append", metavar="SERVER",
                   help="take a server off the refused list; repeat")
    p.add_argument("--a2a-agent", action="append", metavar="HANDLE",
                   help="publish this agent to A2A clients (an agent card, messages into threads); repeat")
    p.add_argument("--no-a2a-agent", action="append", metavar="HANDLE", help="stop publishing this agent; repeat")
    p.add_argument("--retain-days-after-close", metavar="DAYS|never",
                   help="remove message bodies of closed networks this many days after they closed (kept as stubs)")
    b.leaf(sub, "retention", "apply the node's retention now (it also runs every few minutes)",
           _post(lambda a: "/v1/retention/run", lambda d, a: out.retention(d)), path="retention run")
    p = b.leaf(po, "default", "the policy of every partner without one of its own", _policy_default,
               path="policy default")
    _partner_options(p)
    p = b.leaf(po, "partner", "one partner's policy: shown, or changed by the options given", _policy_partner,
               path="policy partner")
    p.add_argument("server")
    _partner_options(p)
    b.leaf(po, "reset", "drop one partner's own policy (the default applies again)",
           _send("DELETE", lambda a: f"/v1/policy/partners/{_seg(a.server)}", lambda d, a: out.partner_policy(d)),
           path="policy reset").add_argument("server")


def _consent_path(verb: str) -> Callable[[argparse.Namespace], str]:
    return lambda a: f"/v1/consents/{_seg(a.network)}/{_seg(a.thread)}/{verb}"


def _register_operators(sub, b: _Builder) -> None:
    op = _group(sub, "operator", "named operators with roles and tokens of their own (owner only)")
    p = b.leaf(op, "add", "name an operator with a role; prints their admin token once",
               _post(lambda a: "/v1/operators",
                     lambda d, a: (f"Operator {out.clean(d['name'])} ({d['role']}): token, shown once; hand it over "
                                   f"and store it now:\n{out.clean(d['token'])}"),
                     lambda a: {"name": a.name, "role": a.role}), path="operator add")
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=("owner", "networks", "workspace", "security", "auditor"),
                   help="what they may change (docs/operations.md, Operators and roles); all may read")
    b.leaf(op, "list", "named operators and their roles",
           _get(lambda a: "/v1/operators", _items(out.OPERATOR_COLUMNS, "(no named operators)")), path="operator list")
    b.leaf(op, "revoke", "revoke an operator's token at once",
           _post(lambda a: f"/v1/operators/{_seg(a.name)}/revoke", _said("Revoked the token of {name}")),
           path="operator revoke").add_argument("name")


def _register_deletes(sub, b: _Builder) -> None:
    b.leaf(sub, "delete-knowledge", "delete a knowledge item",
           _send("DELETE", lambda a: f"/v1/knowledge/{_seg(a.item)}", _said("Deleted {deleted}")),
           path="delete-knowledge").add_argument("item", help="its id (`agentnet knowledge list`)")
    b.leaf(sub, "delete-private-thread", "delete a private thread with its messages",
           _send("DELETE", lambda a: f"/v1/threads/{_seg(a.name)}", _said("Deleted {deleted} ({messages} messages)")),
           path="delete-private-thread").add_argument("name")


def _register_consent(sub, b: _Builder) -> None:
    co = _group(sub, "consent", "threads other companies opened naming this company's people or agents, held back "
                                "until an operator accepts them (partner policy --threads ask)")
    p = b.leaf(co, "list", "held-back threads (default: pending)",
               _get(lambda a: "/v1/consents" + (f"?status={a.status}" if a.status else ""),
                    _items(out.CONSENT_COLUMNS, "(no threads held back)")), path="consent list")
    p.add_argument("--status", choices=("pending", "accepted", "declined", "all"))
    for verb, said in (("accept", "Accepted {network}/{thread}: its participants here see it now"),
                       ("decline", "Declined {network}/{thread}: nothing of it is shown here")):
        p = b.leaf(co, verb, f"{verb} a held-back thread", _post(_consent_path(verb), _said(said)),
                   path=f"consent {verb}")
        p.add_argument("network")
        p.add_argument("thread")


def _register_guard(sub, b: _Builder) -> None:
    gu = _group(sub, "guard", "the outbound guard: what may leave this node; changes apply at once and are audited")
    b.leaf(gu, "show", "the guard's settings: secrets, rules, terms, private content, judge",
           _get(lambda a: "/v1/policy/guard", lambda d, a: out.guard(d)), path="guard show")
    b.leaf(gu, "set", "replace the guard's settings with a JSON file (docs/operations.md shows one)", _guard_set,
           path="guard set").add_argument("file", help="the settings as JSON ('-': read stdin)")
    b.leaf(gu, "check", "what the guard would do with a text; nothing is sent or recorded", _guard_check,
           path="guard check").add_argument("text")
    p = b.leaf(gu, "flags", "messages the guard let through but flagged, for review",
               _paged("/v1/guard/flags", "items", "after", "flags", _items(out.FLAG_COLUMNS, "(no flags)"),
                      lambda a: {"status": a.status}), path="guard flags")
    p.add_argument("--status", choices=("open", "reviewed", "all"), default="open")
    _paging(p, "after")
    p = b.leaf(gu, "review", "mark a flagged message reviewed", _guard_review, path="guard review")
    p.add_argument("flag", help="the flag's id (from `agentnet guard flags`)")
    p.add_argument("--verdict", choices=("ok", "leak"), required=True,
                   help="ok: nothing wrong; leak: it should not have crossed")
    p.add_argument("--note")


def _register_company(sub, b: _Builder) -> None:
    b.leaf(sub, "status", "the node at a glance: identity, key, certificate, networks, peers, invites, alerts",
           _get(lambda a: "/v1/overview", lambda d, a: out.overview(d)),
           path="status")
    pt = _group(sub, "private-thread", "the company's private threads")
    p = b.leaf(pt, "create", "create a private thread",
               _post(lambda a: "/v1/threads", _said("Created private thread {name}"),
                     lambda a: {"name": a.thread, "title": a.title, "members": a.member or []}),
               path="private-thread create")
    p.add_argument("thread")
    p.add_argument("--title", required=True)
    p.add_argument("--member", action="append", help="agent:HANDLE or person:HANDLE; repeat")
    b.leaf(pt, "list", "list private threads",
           _get(lambda a: "/v1/threads", _items(out.PRIVATE_THREAD_COLUMNS, "(no private threads)")),
           path="private-thread list")
    b.leaf(pt, "show", "a private thread and its members",
           _get(lambda a: f"/v1/threads/{_seg(a.thread)}", lambda d, a: out.table([d], out.PRIVATE_THREAD_COLUMNS)),
           path="private-thread show").add_argument("thread")
    p = b.leaf(pt, "members", "set who is in a private thread (the list replaces the one before)",
               _send("PUT", lambda a: f"/v1/threads/{_seg(a.thread)}/members",
                     _said("Private thread {name} now has {members}"), lambda a: {"members": a.member or []}),
               path="private-thread members")
    p.add_argument("thread")
    p.add_argument("--member", action="append", help="agent:HANDLE or person:HANDLE; repeat (none: empty it)")

    kn = _group(sub, "knowledge", "knowledge items")
    p = b.leaf(kn, "add", "add a knowledge item", _knowledge_add, path="knowledge add")
    p.add_argument("--title", required=True)
    p.add_argument("--body")
    p.add_argument("--body-file", help="read the text from a file ('-': stdin)")
    p.add_argument("--reader", action="append", help="who may read it (default: everyone); repeat")
    p = b.leaf(kn, "list", "list knowledge items",
               _paged("/v1/knowledge", "items", "after", "knowledge items",
                      _items(out.KNOWLEDGE_COLUMNS, "(no knowledge)")), path="knowledge list")
    _paging(p, "after")
    p = b.leaf(kn, "search", "search knowledge (every word must match)",
               _get(lambda a: "/v1/knowledge/search?" + urlencode({"q": a.query, "limit": a.limit}),
                    _items(out.KNOWLEDGE_COLUMNS, "(nothing found)")), path="knowledge search")
    p.add_argument("query")
    p.add_argument("--limit", type=int, default=20, help="at most this many (default 20, at most 100)")

    p = b.leaf(sub, "audit", "the audit log, newest first; the options narrow it",
               _paged("/v1/audit", "items", "after", "audit entries", _items(out.AUDIT_COLUMNS, "(no entries)"),
                      _audit_filters), path="audit")
    _paging(p, "after", "before")  # --before: its name before the naming convention
    p.add_argument("--actor", help="who did it, e.g. admin:anadm_1a2b or agent:ops@acme.example")
    p.add_argument("--action", help='an action, or a prefix ending in "." (e.g. invite.)')
    p.add_argument("--network")
    p.add_argument("--partner", metavar="SERVER", help="another company's server name")
    p.add_argument("--since", type=parse_time, metavar="TIME", help="ISO 8601 time (UTC unless it says)")
    p.add_argument("--until", type=parse_time, metavar="TIME", help="ISO 8601 time, exclusive")
    p = b.leaf(sub, "audit-verify", "check the audit log's hash chain from its first entry; exit 1 if broken",
               _verify_audit, path="audit-verify")
    p.add_argument("--anchor", metavar="SEQ:HASH",
                   help="a head printed earlier (kept somewhere else): it must still be in the chain")

    wh = _group(sub, "webhooks", "every principal's webhooks")
    b.leaf(wh, "list", "webhooks with owner, delivery state and problems",
           _get(lambda a: "/v1/webhooks", _items(out.WEBHOOK_COLUMNS, "(no webhooks)")), path="webhooks list")
    for verb in ("disable", "enable"):
        b.leaf(wh, verb, f"{verb} deliveries to a webhook",
               _post(_path_to(lambda a: f"/v1/webhooks/{_seg(a.webhook)}", f"/{verb}"), _said(f"Webhook {{id}} {verb}d")),
               path=f"webhooks {verb}").add_argument("webhook")


def _paging(parser: argparse.ArgumentParser, cursor: str, *old_names: str) -> None:
    parser.add_argument("--limit", type=int, default=50, help="per page (default 50, at most 200)")
    parser.add_argument(f"--{cursor}", *(f"--{n}" for n in old_names), dest=cursor, metavar="CURSOR",
                        help="a cursor printed by an earlier page")
    parser.add_argument("--all", action="store_true", help="every page (progress on stderr)")


def _register_client(sub, b: _Builder) -> None:
    where = "a shared thread with --network NETWORK, else a private thread"
    p = b.leaf(sub, "post", f"post as an agent or person (token from --token): {where}", _post_message,
               path="post", listener="client")
    p.add_argument("thread")
    p.add_argument("body", help="the message ('-': read stdin)")
    p.add_argument("--network")
    p.add_argument("--idempotency-key", help="a retry with the same key is stored once")
    p.add_argument("--reply-to", metavar="MESSAGE", help="the id of the message it answers (shared threads)")
    p.add_argument("--mention", action="append", metavar="PARTICIPANT",
                   help="a participant of the shared thread it addresses, e.g. agent:delivery@globex.example; repeat")
    p.add_argument("--file", action="append", type=Path, metavar="PATH", help="upload and attach a file; repeat (8 at "
                                                                               "most, 25 MiB each)")
    p.add_argument("--attach", action="append", metavar="FILE_ID", help="attach an earlier `agentnet upload`; repeat")
    p.add_argument("--data", metavar="JSON", help="structured content beside the text: a JSON object, integers only")
    p = b.leaf(sub, "read", f"read as an agent or person (token from --token): {where}", _read,
               path="read", listener="client")
    p.add_argument("thread")
    p.add_argument("--network")
    _paging(p, "after")
    from node.ops.client_commands import register_verbs  # here: it imports this module's names when it runs

    register_verbs(sub, b.leaf)


def _register_apps(sub, b: _Builder) -> None:
    """Applications (one integration acting as several agents) are principals like agents,
    plus the list of agents each may act as."""
    group = _register_principals(sub, b, "app", "apps")
    p = b.leaf(group, "agents", "show the agents an application may act as; with --agent or --none, set them",
               _app_agents, path="app agents")
    p.add_argument("handle")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--agent", action="append", metavar="HANDLE", help="an agent it may act as; repeat for several "
                                                                          "(replaces the list)")
    which.add_argument("--none", action="store_true", help="it may act as no agent")


async def _app_agents(args: argparse.Namespace, api: Api) -> None:
    path = f"/v1/apps/{_seg(args.handle)}/agents"
    if args.agent is None and not args.none:
        data = await api.call("GET", path)
    else:
        data = await api.call("PUT", path, {"agents": args.agent or []})
    _show(args, data, lambda d, a: f"{d['app']} acts as:\n" + out.table(d["agents"], out.PRINCIPAL_COLUMNS,
                                                                         empty="(no agents)"))


def register(sub) -> None:
    b = _Builder()
    _register_company(sub, b)
    _register_principals(sub, b, "agent", "agents")
    people = _register_principals(sub, b, "person", "people")
    p = b.leaf(people, "sign-in-link", "a one-time link that signs the person in to the web app (15 minutes)",
               _post(lambda a: f"/v1/people/{_seg(a.handle)}/sign-in-link",
                     lambda d, a: f"Sign-in link for person:{out.clean(a.handle)} (works once, until "
                                  f"{out.when(d['expires_at'])}; send it to them only):\n{out.clean(d['url'])}",
                     lambda a: {}), path="person sign-in-link")
    p.add_argument("handle")
    b.leaf(sub, "console", "a one-time link to the operator console in a browser on this machine (10 minutes)",
           _post(lambda a: "/v1/console/sign-in-link",
                 lambda d, a: f"Open the console (once, until {out.when(d['expires_at'])}):\n{out.clean(d['url'])}"),
           path="console")
    sessions = _group(sub, "web-session", "people signed in to the web app: list, revoke")
    b.leaf(sessions, "list", "open web app sessions, newest first",
           _get(lambda a: "/v1/web-sessions", _items(out.WEB_SESSION_COLUMNS, "(nobody is signed in)")),
           path="web-session list")
    p = b.leaf(sessions, "revoke", "sign a browser session out now",
               _post(lambda a: f"/v1/web-sessions/{_seg(a.session)}/revoke", _said("Signed out session {session}")),
               path="web-session revoke")
    p.add_argument("session")
    _register_apps(sub, b)
    _register_networks(sub, b)
    _register_policy(sub, b)
    _register_guard(sub, b)
    _register_consent(sub, b)
    _register_deletes(sub, b)
    _register_operators(sub, b)
    _register_client(sub, b)
