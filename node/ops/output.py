"""How the operator commands print: aligned tables, `key: value` blocks, message logs, JSON
as the API sent it, and a progress line for long work.

Every cell is made safe for a terminal first: names, bodies and errors can come from another
company's node, so control characters (escape sequences included) are never printed raw.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = [
    "Column",
    "Progress",
    "clean",
    "key_values",
    "last_error",
    "message_log",
    "network_detail",
    "overview",
    "print_json",
    "table",
    "token_made",
    "when",
]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(value: Any) -> str:
    """One line of printable text for a cell."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(clean(v) for v in value) or "-"
    if isinstance(value, dict):
        value = json.dumps(value, separators=(",", ":"), ensure_ascii=False) if value else "-"
    return _CONTROL.sub("?", str(value).replace("\r\n", " ").replace("\n", " ").replace("\t", " "))


def when(ms: int | None) -> str:
    """A millisecond timestamp as UTC to the minute; '-' for none."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%MZ")


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    get: str | Callable[[dict], Any]

    def cell(self, row: dict) -> str:
        return clean(row.get(self.get) if isinstance(self.get, str) else self.get(row))


def table(rows: Iterable[dict], columns: Sequence[Column], *, empty: str = "(none)") -> str:
    cells = [[c.cell(row) for c in columns] for row in rows]
    if not cells:
        return empty
    headers = [c.header for c in columns]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = [headers, *cells]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def key_values(pairs: Sequence[tuple[str, Any]]) -> str:
    width = max(len(k) for k, _ in pairs) + 1
    return "\n".join(f"{(k + ':').ljust(width)} {clean(v)}" for k, v in pairs)


def message_log(messages: Iterable[dict]) -> str:
    """Messages oldest first: a header line per message, the body indented below it."""
    out = []
    for m in messages:
        position = f"#{m['seq']}" if m.get("seq") is not None else m.get("status") or f"id {m['id']}"
        at = m.get("created_at", m.get("origin_ts"))  # an older node says origin_ts
        marks = [w for w in ("edited", "deleted") if m.get(w)]
        reply = f"  reply to {m['reply_to']}" if m.get("reply_to") else ""
        out.append(f"{clean(position)}  {when(at)}  {clean(m['sender'])}  {clean(m['id'])}{clean(reply)}"
                   + (f"  ({', '.join(marks)})" if marks else ""))
        for line in str(m["body"]).splitlines() or [""]:
            out.append("    " + _CONTROL.sub("?", line.replace("\t", "    ")))
        for a in m.get("attachments") or []:
            out.append(clean(f"    [file {a['position']}: {a['name']}, {a['content_type']}, {a['size']} bytes]"))
        if m.get("data"):
            out.append(clean(f"    [data: {json.dumps(m['data'], ensure_ascii=False)}]"))
        if m.get("reactions"):
            out.append(clean("    [" + "; ".join(f"{r}: {', '.join(who)}" for r, who in m["reactions"].items()) + "]"))
    return "\n".join(out) if out else "(no messages)"


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


class Progress:
    """`label: N items` rewritten in place on stderr, only when stderr is a terminal."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._label = label
        self._shown = False
        self._on = self._stream.isatty()

    def update(self, count: int) -> None:
        if self._on:
            self._stream.write(f"\r{self._label}: {count} so far...")
            self._stream.flush()
            self._shown = True

    def done(self) -> None:
        if self._shown:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()
            self._shown = False


# --- the admin API's answers, as tables --------------------------------------------------------

C = Column
NETWORK_COLUMNS = [C("NETWORK", "name"), C("TITLE", "title"), C("HOST", "host"),
                   C("ROLE", lambda n: "host" if n["hosted_here"] else "member"),
                   C("STATE", lambda n: "halted" if n.get("halted") else "closed" if n["closed"] else "open"),
                   C("MEMBERS", lambda n: len(n["members"])), C("THREADS", lambda n: len(n["threads"])),
                   C("HEAD", "head_seq"), C("PENDING", "pending_events")]
THREAD_COLUMNS = [C("NETWORK", "network"), C("THREAD", "name"), C("TITLE", "title"),
                  C("STATE", lambda t: "closed" if t["closed"] else "open"), C("PARTICIPANTS", "participants")]
INVITE_COLUMNS = [C("ID", "id"), C("DIRECTION", "direction"), C("NETWORK", "network"), C("HOST", "host"),
                  C("SERVER", "server"), C("STATUS", "status"), C("FINGERPRINT", "fingerprint"),
                  C("EXPIRES", lambda i: when(i["expires_at"])),
                  C("EARLIER HISTORY", lambda i: "visible" if i.get("history_visible", True) else "hidden")]
PRINCIPAL_COLUMNS = [C("ID", "id"), C("HANDLE", "handle"), C("NAME", "display_name"),
                     C("STATE", lambda p: "disabled" if p["disabled"] else "active"),
                     C("CREATED", lambda p: when(p["created_at"]))]
WEB_SESSION_COLUMNS = [C("ID", "id"), C("PERSON", "person"), C("SINCE", lambda s: when(s["created_at"])),
                       C("EXPIRES", lambda s: when(s["expires_at"])), C("BROWSER", "user_agent")]
TOKEN_COLUMNS = [C("ID", "id"), C("PREFIX", "prefix"), C("SCOPES", "scopes"),
                 C("CREATED", lambda t: when(t["created_at"])), C("EXPIRES", lambda t: when(t["expires_at"])),
                 C("REVOKED", lambda t: when(t["revoked_at"])), C("ACTIVE", "active")]
PEER_COLUMNS = [C("SERVER", "server"), C("STATUS", "status"), C("ENDPOINT", "endpoint"), C("QUEUE", "queue_depth"),
                C("LAST SUCCESS", lambda p: when(p["last_success_at"])), C("LAST ERROR", lambda p: last_error(p)),
                C("NEXT RETRY", lambda p: when(p["next_attempt_at"])), C("FINGERPRINTS", "fingerprints")]
ALERT_COLUMNS = [C("KIND", "kind"), C("NETWORK", "network"), C("SERVER", "server"), C("SEEN", "count"),
                 C("LAST", lambda a: when(a["last_seen_at"])), C("WHAT", "message")]
VOUCHED_KEY_COLUMNS = [C("SERVER", "server"), C("KEY", "key_id"), C("STATUS", "status"),
                       C("FINGERPRINT", "fingerprint")]
REFUSAL_COLUMNS = [C("MEMBER", "member"), C("SEQ", "seq"), C("TYPE", "type"), C("AT", lambda r: when(r["created_at"])),
                   C("ERROR", "error")]
PRIVATE_THREAD_COLUMNS = [C("THREAD", "name"), C("TITLE", "title"), C("MEMBERS", "members"),
                          C("CREATED", lambda t: when(t["created_at"]))]
KNOWLEDGE_COLUMNS = [C("ID", "id"), C("TITLE", "title"), C("READERS", lambda k: k["readers"] or "everyone"),
                     C("CREATED", lambda k: when(k["created_at"])), C("BODY", lambda k: _preview(k["body"]))]
AUDIT_COLUMNS = [C("SEQ", "id"), C("AT", lambda a: when(a["created_at"])), C("ACTOR", "actor"), C("ACTION", "action"),
                 C("TARGET", "target"), C("NETWORK", "network"), C("PARTNER", "partner"), C("DETAIL", "detail")]
WEBHOOK_COLUMNS = [C("ID", "id"), C("OWNER", "owner"), C("URL", "url"), C("STATUS", "status"),
                   C("FAILURES", "failures"), C("LAST ANSWER", "last_status"),
                   C("LAST SUCCESS", lambda w: when(w["last_success_at"])),
                   C("PROBLEM", lambda w: w["disabled_reason"] or w["last_error"])]


def _preview(text: str, width: int = 60) -> str:
    text = clean(text)
    return text if len(text) <= width else text[:width - 3] + "..."


def network_detail(n: dict) -> str:
    head = key_values([("network", n["name"]), ("title", n["title"]), ("host", n["host"]),
                       ("hosted here", n["hosted_here"]), ("closed", n["closed"]),
                       ("head seq", n["head_seq"]), ("pending events", n["pending_events"])])
    halted = n.get("halted")
    if halted:
        head += "\n\n" + key_values([
            ("HALTED at seq", halted["seq"]), ("event", halted["event_id"]), ("why", halted["reason"]),
            ("since", when(halted["halted_at"])), ("tries", halted["tries"]), ("next try", when(halted["next_try_at"])),
            ("way out", f"fix the cause, then `agentnet network resume {n['name']}`; or `agentnet network leave`")])
    members = table([{"server": s, "status": st} for s, st in n["members"].items()],
                    [C("SERVER", "server"), C("STATUS", "status")])
    participants = table(n["participants"], [C("PARTICIPANT", "id"), C("NAME", "display_name"),
                                             C("ATTACHED", "attached")])
    threads = table(n["threads"], THREAD_COLUMNS[1:])
    parts = [head, f"Members\n{members}", f"Participants\n{participants}", f"Threads\n{threads}"]
    if n.get("vouched_keys"):
        parts.append("Keys the host vouched for\n" + table(n["vouched_keys"], VOUCHED_KEY_COLUMNS))
    if n.get("refusals"):
        parts.append("Refused for good\n" + table(n["refusals"], REFUSAL_COLUMNS))
    return "\n\n".join(parts)


def last_error(p: dict) -> str:
    """The last error with its time, and whether the peer answered since."""
    if not p["last_error"]:
        return "-"
    recovered = p["last_success_at"] is not None and p["last_success_at"] > (p["last_error_at"] or 0)
    return f"{when(p['last_error_at'])}{' (answered since)' if recovered else ''}: {p['last_error']}"


NETWORK_SUMMARY_COLUMNS = [
    C("NETWORK", "name"), C("HOST", "host"), C("MEMBERS", "members"), C("PENDING", "pending_events"),
    C("STATE", lambda n: "HALTED (agentnet network show)" if n["halted"] else "closed" if n["closed"] else "open")]


def overview(o: dict) -> str:
    node, cert = o["node"], o["certificate"]
    expiry = "-" if cert is None else f"{when(cert['expires_at'])} ({cert['days_left']} days)" + (
        "  RENEW SOON" if cert["days_left"] < 30 else "")
    head = key_values([("server", f"{node['server_name']} ({node['display_name']})"), ("version", node["version"]),
                       ("signing key", f"{o['key']['key_id']}  {o['key']['fingerprint']}"),
                       ("TLS certificate until", expiry),
                       ("people, agents", f"{node['people']}, {node['agents']}"),
                       ("private threads", node["private_threads"]),
                       ("pending invites", f"{o['pending_invites']}" + (" (agentnet invites)" if o["pending_invites"] else "")),
                       ("alerts", f"{o['alerts']}" + (" (agentnet alerts)" if o["alerts"] else ""))])
    peers = table(o["peers"], [C("PEER", "server"), C("STATUS", "status"), C("QUEUE", "queue_depth"),
                               C("LAST SUCCESS", lambda p: when(p["last_success_at"])), C("LAST ERROR", last_error),
                               C("NEXT RETRY", lambda p: when(p["next_attempt_at"]))], empty="(no peers)")
    networks = table(o["networks"], NETWORK_SUMMARY_COLUMNS, empty="(no networks)")
    return f"{head}\n\nNetworks\n{networks}\n\nPeers\n{peers}"


def token_made(what: str, d: dict) -> str:
    """The one place a token is printed: right after the node made it."""
    token_id = d.get("token_id", d.get("id"))
    expires = d.get("token_expires_at", d.get("expires_at"))
    return (f"{what} {clean(d.get('principal', d.get('id')))}: token {clean(token_id)}, scopes {clean(d['scopes'])}, "
            f"expires {when(expires) if expires else 'never'}\nToken (shown once; store it now):\n{clean(d['token'])}")


def _partner_lines(policy: dict) -> list[str]:
    return [f"  agents allowed:     {'yes' if policy['agents'] else 'no'}",
            f"  longest message:    {policy['max_message_chars']} characters",
            f"  events a minute:    {policy.get('max_events_per_minute') or 'the node limits only'}",
            "  files:              " + (f"up to {policy.get('max_file_bytes')} bytes, "
                                         f"{', '.join(policy['file_types']) if policy.get('file_types') else 'any type'}"
                                         if policy.get("files", True) else "none cross"),
            f"  threads it opens:   {'shown at once' if policy['threads'] == 'auto' else 'held for consent'}"]


def partner_policy(data: dict) -> str:
    """One partner's policy, as `agentnet policy partner` shows it."""
    source = {"own": "its own", "default": "the partners default", "built-in": "built in"}[data["source"]]
    return "\n".join([f"{clean(data['server'])} ({source}):", *_partner_lines(data["policy"])])


def policy(data: dict) -> str:
    """The whole policy, as `agentnet policy show` prints it."""
    node = data["node"]
    lines = ["Node:",
             f"  accepts invites:    {'yes' if node['accept_invites'] else 'no'}",
             f"  auto-accepted from: {', '.join(clean(s) for s in node['auto_accept']) or '-'}",
             f"  invites refused from: {', '.join(clean(s) for s in node['refuse_invites_from']) or '-'}",
             f"  A2A agents:         {', '.join(clean(s) for s in node.get('a2a_agents', [])) or '-'}",
             f"  blocked:            {', '.join(clean(s) for s in data['blocked']) or '-'}",
             "  message bodies:     " + ("kept" if node.get("retain_days_after_close") is None else
                                         f"removed {node['retain_days_after_close']} days after a network closes"),
             "Partners (default):", *_partner_lines(data["default_partner"])]
    for partner in data["partners"]:
        lines += [f"Partner {clean(partner['server'])}:", *_partner_lines(partner["policy"])]
    return "\n".join(lines)


def guard(data: dict) -> str:
    """The outbound guard's settings, as `agentnet guard show` prints them."""
    judge = data.get("judge")
    lines = [f"Enabled:          {'yes' if data['enabled'] else 'no'}",
             f"Built-in secrets: {data['secrets']}",
             f"Private content:  {data['private_content']} (runs in common: {data['min_shared']}, share: "
             f"{data['threshold']}, or {data['enough_shared']} runs whatever the lengths)",
             f"Terms ({data['terms_action']}): {', '.join(clean(t) for t in data['terms']) or '-'}",
             "Judge:            " + ("-" if not judge else
                                     f"{clean(judge.get('python') or judge.get('url'))}, timeout {judge['timeout_ms']} ms, "
                                     f"on error {judge['on_error']}"),
             "Rules:" if data["rules"] else "Rules:            -"]
    lines += [f"  {clean(r['name'])} ({r['action']}): {clean(r['pattern'])}" for r in data["rules"]]
    return "\n".join(lines)


def guard_check(data: dict) -> str:
    lines = [f"Decision: {data['decision']}", f"Rules:    {clean(data['rules'])}"]
    if data["sources"]:
        lines.append(f"Matches:  {clean(data['sources'])}")
    lines.append(f"Sent as:  {clean(data['text'])}" if data.get("text") is not None else
                 f"Author is told: {clean(data['message'])}")
    return "\n".join(lines)


FLAG_COLUMNS = [Column("ID", "id"), Column("AT", lambda f: when(f["created_at"])), Column("AUTHOR", "author"),
                Column("WHERE", lambda f: f"{f['network']}/{f['thread'] or '-'}"), Column("RULES", "rules"),
                Column("VERDICT", "verdict"), Column("MESSAGE", lambda f: _preview(f["body"] or "-"))]


CONSENT_COLUMNS = [Column("NETWORK", "network"), Column("THREAD", "thread"), Column("OPENED BY", "opened_by"),
                   Column("STATUS", "status"), Column("ASKED", lambda c: when(c["requested_at"])),
                   Column("DECIDED BY", "decided_by")]


def retention(data: dict) -> str:
    if data["retain_days_after_close"] is None:
        return "Retention is off: message bodies are kept (agentnet policy node --retain-days-after-close DAYS)"
    done = ", ".join(f"{clean(n)}: {c}" for n, c in data["networks"].items()) or "nothing due"
    return f"Retention ({data['retain_days_after_close']} days after close): messages kept as stubs: {done}"


OPERATOR_COLUMNS = [Column("NAME", "name"), Column("ROLE", "role"), Column("TOKEN", "prefix"),
                    Column("SINCE", lambda o: when(o["created_at"])), Column("REVOKED", lambda o: when(o["revoked_at"]))]
