"""Transcripts: whatever another company wrote (bodies, display names, thread titles) comes out
as text, never as Markdown or HTML markup."""

from __future__ import annotations

import html as html_lib
import re

from federation.export_file import ExportDocument, ExportKey
from federation.export_replay import verify_export
from federation.export_report import ExportReport
from node.ops import transcript
from tests.federation.factories import KEYS, TS, event, sequence_chain

HOSTILE_NAME = "[click](javascript:alert(1)) <img src=x onerror=alert(2)> **bold** &lt;"
HOSTILE_TITLE = "<script>alert(3)</script> `x` | y"
BODIES = ["<script>alert(1)</script>", "[x](javascript:alert(1))", "```` closes?\n````\n<b>still code</b>",
          "line\x1b[31m with an escape sequence"]
OPS, MALLORY = "agent:ops@acme.example", "agent:mallory@globex.example"


def _report() -> ExportReport:
    g = KEYS["globex.example"].verify_key
    history = [
        event("network.created", "operator:admin@acme.example", title="Rollout", history_visible_to_new_members=True),
        event("member.admitted", "operator:admin@acme.example", server="globex.example", key_id=g.key_id,
              public_key=g.to_base64()),
        event("participant.attached", "operator:admin@acme.example", participant=OPS, display_name="Ops"),
        event("participant.attached", "operator:admin@globex.example", participant=MALLORY,
              display_name=HOSTILE_NAME),
        event("thread.opened", MALLORY, thread="t", title=HOSTILE_TITLE, participants=[MALLORY, OPS]),
        *(event("message.posted", MALLORY, thread="t", body=body, ts=TS + i + 1) for i, body in enumerate(BODIES)),
    ]
    chain = sequence_chain(history)
    keys = {s: (ExportKey(s, KEYS[s].key_id, KEYS[s].verify_key, None, None, False, "peer"),)
            for s in ("acme.example", "globex.example")}
    doc = ExportDocument(network="acme-rollout", title="Rollout", host="acme.example", exported_by="acme.example",
                         exported_at=TS, head_seq=len(chain), head_link_hash=chain[-1].link_hash, keys=keys,
                         key_documents={}, events=tuple(e.to_wire() for e in chain))
    report = verify_export(doc)
    assert report.ok, report.failure
    return report


def test_html_escapes_everything_and_allows_no_script():
    page = transcript.html(_report(), "t", file_sha256="0" * 64)
    body = page.split("</head>", 1)[1]
    assert not re.search(r"<(script|img|b)[\s>]", body)
    assert "javascript:alert(1)" in body  # as text, in <pre>
    for text in (*BODIES[:3], HOSTILE_NAME, HOSTILE_TITLE):
        first_line = text.split("\n")[0]
        assert html_lib.escape(first_line, quote=True) in page
    assert "\x1b" not in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_markdown_keeps_bodies_in_unbreakable_code_blocks_and_escapes_names():
    md = transcript.markdown(_report(), "t", file_sha256="0" * 64)
    assert "\x1b" not in md
    blocks, outside, fence = [], [], None
    for line in md.splitlines():
        if fence is None and re.fullmatch(r"`{3,}", line):
            fence, current = line, []
        elif fence is not None and line == fence:
            blocks.append("\n".join(current))
            fence = None
        elif fence is not None:
            current.append(line)
        else:
            outside.append(line)
    assert fence is None
    assert blocks[0] == BODIES[0] and blocks[1] == BODIES[1] and blocks[2] == BODIES[2]
    rest = "\n".join(outside)
    unescaped = re.compile(r"(?<!\\)(\[click|\]\(|<img|<script|&lt;)")  # markup only if not backslashed
    assert not unescaped.search(rest) and "**bold**" not in rest
    assert r"\[click\](javascript:alert(1)) \<img src=x onerror=alert(2)\> \*\*bold\*\* \&lt;" in rest
    assert r"\<script\>alert(3)\</script\> \`x\` \| y" in rest
