"""A readable transcript of one shared thread, from a verified export only
(`federation.export_report`): Markdown or a standalone HTML page.

Everything in it but our own labels was written by some company, any of which may be hostile,
so nothing it wrote can become markup:

- HTML: every value goes through `html.escape` (quotes too); bodies sit in `<pre>`; the page
  carries a Content-Security-Policy that allows no script, no image, no request of any kind.
- Markdown: each body is a fenced code block whose fence is longer than any run of backticks
  in the body, so nothing inside can close it, and a code block renders no link, image,
  emphasis or HTML. Names and titles are on one line with every character that can open
  inline markup backslash-escaped (CommonMark allows escaping any ASCII punctuation), so
  `[x](javascript:...)`, `<script>`, `&lt;` or `**` stay literal text.

Control characters are replaced in both, as in the terminal (`node.ops.output`).
"""

from __future__ import annotations

import html as html_lib
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from federation.export_report import ExportReport, Said, ThreadRecord

__all__ = ["html", "markdown"]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # tab and newline are kept in bodies
# What can start markup inline: links and images, HTML and autolinks, emphasis, code, entities,
# tables and strikethrough. Line-start markup (headings, lists) cannot occur: every line starts
# with our own text.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>!#|~&])")
_BACKTICKS = re.compile(r"`+")


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _line(text: str) -> str:
    return _CONTROL.sub("?", text.replace("\r\n", " ").replace("\n", " ").replace("\t", " "))


def _body(text: str) -> str:
    return _CONTROL.sub("?", text.replace("\r\n", "\n"))


class _View:
    """What both formats show, as plain text still to be escaped."""

    def __init__(self, report: ExportReport, thread: str) -> None:
        self.report = report
        self.thread: ThreadRecord = next(t for t in report.threads if t.name == thread)
        self.said = [s for s in report.said if s.thread == thread]
        self._seq_of = {s.event_id: s.seq for s in report.said}
        companies = {p.rpartition("@")[2] for p in self.thread.participants}
        self.companies = [c for c in report.companies if c.server in companies or c.server == report.host]

    def who(self, participant: str) -> str:
        name = self.report.names.get(participant)
        return f"{name} ({participant})" if name else participant

    def header(self, said: Said) -> str:
        where = {"posted": "in reply to", "edited": "edits", "deleted": "deletes"}[said.kind]
        refers = "" if said.refers_to is None else f" · {where} #{self._seq_of.get(said.refers_to, said.refers_to)}"
        return f"#{said.seq} · {_time(said.host_ts)} · {self.who(said.sender)} · {said.company}{refers}"

    def facts(self, file_sha256: str) -> list[tuple[str, str]]:
        r = self.report
        closed = "open" if self.thread.closed_seq is None else f"closed at #{self.thread.closed_seq}"
        return [("Network", f"{r.network} ({r.title}), hosted by {r.host}"),
                ("Thread", f"{self.thread.name}, opened at #{self.thread.opened_seq} by "
                           f"{self.who(self.thread.opened_by)}, {closed}"),
                ("Participants", ", ".join(self.who(p) for p in self.thread.participants)),
                ("Verified", f"events 1 to {r.verified_seq} of the export by {r.exported_by} made "
                             f"{_time(r.exported_at)}: signatures, hash chain and rules"),
                ("Export file SHA-256", file_sha256)]

    def fingerprints(self) -> list[str]:
        return [f"{c.server}: " + "; ".join(f"{k.key_id} {k.fingerprint}" for k in c.keys if k.signed)
                for c in self.companies]


def _md(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", _line(text))


def markdown(report: ExportReport, thread: str, *, file_sha256: str) -> str:
    view = _View(report, thread)
    lines = [f"# {_md(view.thread.title)}", ""]
    lines += [f"- **{label}:** {_md(value)}" for label, value in view.facts(file_sha256)]
    lines += ["- **Key fingerprints:**", *(f"  - {_md(f)}" for f in view.fingerprints())]
    lines += ["", "Message text is shown verbatim, as code; nothing in it is rendered.", ""]
    for said in view.said:
        lines += [f"### {_md(view.header(said))}", ""]
        if said.body is not None:
            body = _body(said.body)
            fence = "`" * max(3, 1 + max((len(run) for run in _BACKTICKS.findall(body)), default=0))
            lines += [fence, body, fence, ""]
        else:
            lines += ["*(deleted)*", ""]
    if not view.said:
        lines += ["*(no messages)*", ""]
    return "\n".join(lines)


def _h(text: str) -> str:
    return html_lib.escape(_line(text), quote=True)


_STYLE = ("body{font-family:sans-serif;max-width:50em;margin:2em auto;padding:0 1em}"
          "pre{white-space:pre-wrap;background:#f4f4f4;padding:.5em;border-radius:4px}"
          ".meta{color:#555;font-size:.9em;margin-top:1.2em}dt{font-weight:bold}")


def html(report: ExportReport, thread: str, *, file_sha256: str) -> str:
    view = _View(report, thread)
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
             "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
             f"<title>{_h(view.thread.title)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{_h(view.thread.title)}</h1>", "<dl>"]
    parts += [f"<dt>{_h(label)}</dt><dd>{_h(value)}</dd>" for label, value in view.facts(file_sha256)]
    parts += ["<dt>Key fingerprints</dt>", *(f"<dd>{_h(f)}</dd>" for f in view.fingerprints()), "</dl>"]
    for said in view.said:
        parts.append(f'<div class="meta" id="seq-{said.seq}">{_h(view.header(said))}</div>')
        if said.body is not None:
            parts.append(f"<pre>{html_lib.escape(_body(said.body), quote=True)}</pre>")
        else:
            parts.append("<p><em>(deleted)</em></p>")
    if not view.said:
        parts.append("<p><em>(no messages)</em></p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
