"""`agentnet export` from a member of a three-company network over real TLS, in which one
company rotated its key, then `agentnet verify` in a separate process that has no node, no
data dir, no token and an empty environment; tampered files fail, naming the seq."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from federation.keys import SigningKey
from node.basics.clock import SystemClock
from node.federation.key_publishing import rotate_node_key
from storage.storage import Storage
from tests.cluster import ClusterNode, eventually, start_node
from tests.node.federation.test_lifecycle import NETWORK, SERVERS, THREAD, bodies, incident, post
from tests.tls_fixtures import TestCertificateAuthority

HOSTILE = ["<script>alert(1)</script>", "[x](javascript:alert(1))", "```\n</pre><img src=x onerror=alert(1)>"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, dict[str, SigningKey]]:
    """A network where every company posted and globex rotated its key, exported from initech
    (built once: three nodes over TLS and a restart take a while)."""
    tmp = tmp_path_factory.mktemp("export")
    with ThreadPoolExecutor(max_workers=1) as pool:  # a loop of its own, whatever the tests run in
        return pool.submit(asyncio.run, _export_from_a_member(tmp)).result()


async def _export_from_a_member(tmp: Path) -> tuple[Path, dict[str, SigningKey]]:
    ca = TestCertificateAuthority()
    nodes = [await start_node(tmp, server, ca) for server in SERVERS]
    try:
        acme, globex, initech = nodes
        tokens = await incident(nodes)
        await post(globex, tokens[globex.server], "signed with the old key")
        for body in HOSTILE:
            await post(acme, tokens[acme.server], body)
        old_key = globex.key
        await _rotate(globex)
        await post(globex, tokens[globex.server], "signed with the new key")
        await post(initech, tokens[initech.server], "initech agrees")
        await eventually(lambda: _has(initech, tokens[initech.server], ["signed with the new key", "initech agrees"]),
                         timeout=30)
        out = tmp / "incident.json"
        code, said = await _cli(initech, "export", NETWORK, "-o", str(out))
        assert code == 0 and "Exported incident-42" in said and "agentnet verify" in said
        audit = await initech.admin("GET", "/v1/audit?action=network.export")
        assert [e["target"] for e in audit["items"]] == [NETWORK]
        assert (await _cli(initech, "export", NETWORK, "-o", str(out)))[0] == 2  # exists: no --force
        assert (await _cli(initech, "export", NETWORK, "-o", str(out), "--force"))[0] == 0
        assert (await _cli(initech, "export", "no-such-network", "-o", str(tmp / "none.json")))[0] == 1
        assert not (tmp / "none.json").exists()
        return out, {"acme": acme.key, "globex-old": old_key, "globex": globex.key, "initech": initech.key}
    finally:
        for node in reversed(nodes):
            await node.stop()


async def _cli(node: ClusterNode, *argv: str) -> tuple[int, str]:
    from node.main.cli import main

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = await asyncio.to_thread(main, [*argv, "--admin-url", f"http://127.0.0.1:{node.ports['admin']}",
                                              "--admin-token", node.admin_token])
    return code, printed.getvalue()


async def _rotate(node: ClusterNode) -> None:
    """`agentnet keys rotate`, as the operator runs it: stop, rotate, start again."""
    await node.stop()
    key_file = node.data_dir / "signing.key"
    node.key.save(key_file, overwrite=True)
    storage = await Storage.open(node.database_url)
    try:
        await rotate_node_key(storage, key_file, server=node.server, now=SystemClock().now_ms())
    finally:
        await storage.close()
    node.key = SigningKey.load(key_file)
    await node.start()


async def _has(node: ClusterNode, token: str, wanted: list[str]) -> bool:
    seen = [b for seq, b in await bodies(node, token) if seq is not None]
    return all(w in seen for w in wanted)


def _verify_elsewhere(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """`agentnet verify` in a new process: an empty environment, an empty working directory."""
    empty = tmp_path / "elsewhere"
    empty.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "node.main.cli", "verify", *argv], cwd=empty, env={},
                          capture_output=True, text=True, timeout=120)


def test_an_export_verifies_offline_in_a_process_without_a_node(exported, tmp_path):
    path, keys = exported
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    done = _verify_elsewhere(tmp_path, str(path))
    assert done.returncode == 0, done.stderr
    assert "VERIFIED" in done.stdout and "NOT VERIFIED" not in done.stdout
    for server in SERVERS:
        assert server in done.stdout
    for key in keys.values():
        assert key.verify_key.fingerprint in done.stdout
    document = json.loads(path.read_bytes())
    assert document["head"]["seq"] == len(document["events"]) and document["exported_by"] == "initech.example"
    assert {k["key_id"] for k in document["keys"]["globex.example"]} >= {keys["globex-old"].key_id,
                                                                         keys["globex"].key_id}

    report = json.loads(_verify_elsewhere(tmp_path, str(path), "--json").stdout)
    companies = {c["server"]: c for c in report["companies"]}
    assert report["ok"] and companies["globex.example"]["messages"] == 2
    assert companies["acme.example"]["messages"] == len(HOSTILE) and companies["initech.example"]["messages"] == 1
    signed = {k["key_id"]: k["signed"] for k in companies["globex.example"]["keys"]}
    assert signed[keys["globex-old"].key_id] > 0 and signed[keys["globex"].key_id] > 0  # old and new both used

    pins = ["--pin", f"acme.example={keys['acme'].verify_key.fingerprint}",
            "--pin", f"globex.example={keys['globex-old'].verify_key.fingerprint}",
            "--pin", f"globex.example={keys['globex'].verify_key.fingerprint.replace(' ', '').lower()}"]
    assert _verify_elsewhere(tmp_path, str(path), *pins).returncode == 0
    wrong = _verify_elsewhere(tmp_path, str(path), "--pin", f"acme.example={keys['initech'].verify_key.fingerprint}")
    assert wrong.returncode == 1 and "pin" in wrong.stderr


def _tampered(path: Path, tmp_path: Path, change) -> Path:
    document = json.loads(path.read_bytes())
    change(document)
    out = tmp_path / "tampered.json"
    out.write_text(json.dumps(document))
    return out


def _first_message(document: dict) -> int:
    return next(i for i, e in enumerate(document["events"]) if e["event"]["type"] == "message.posted")


def _change_body(d: dict) -> None:
    d["events"][_first_message(d)]["event"]["content"]["body"] = "something else"


def _remove(d: dict) -> None:
    del d["events"][_first_message(d)]


def _swap(d: dict) -> None:
    i = _first_message(d)
    d["events"][i], d["events"][i + 1] = d["events"][i + 1], d["events"][i]


def _forge_key(d: dict) -> None:
    d["keys"]["acme.example"][0]["public_key"] = SigningKey.generate().verify_key.to_base64()


@pytest.mark.parametrize("change, stage", [(_change_body, "origin signature"), (_remove, "chain"),
                                           (_swap, "chain"), (_forge_key, "signature")])
def test_a_tampered_export_fails_naming_the_seq(exported, tmp_path, capsys, change, stage):
    from node.main.cli import main

    path, _ = exported
    seq = _first_message(json.loads(path.read_bytes())) + 1
    tampered = _tampered(path, tmp_path, change)
    capsys.readouterr()
    code = main(["verify", str(tampered)])
    err = capsys.readouterr().err
    assert code == 1, err
    if change is _forge_key:  # the host's key: its first signature is on seq 1
        assert "does not verify at seq 1:" in err and "altered" in err
    else:
        assert f"does not verify at seq {seq}:" in err and stage in err


@pytest.mark.parametrize("content, problem", [(None, "not a readable export"), (b"\x89PNG garbage", "not a readable"),
                                              (b"", "not a readable export")])
def test_a_truncated_or_garbage_file_is_refused_as_unreadable(exported, tmp_path, capsys, content, problem):
    from node.main.cli import main

    path, _ = exported
    bad = tmp_path / "bad.json"
    data = path.read_bytes()
    bad.write_bytes(data[: len(data) // 2] if content is None else content)
    capsys.readouterr()
    assert main(["verify", str(bad)]) == 2
    assert problem in capsys.readouterr().err
    assert main(["verify", str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_the_transcript_escapes_what_companies_wrote(exported, tmp_path, capsys):
    from node.main.cli import main

    path, _ = exported
    page, notes = tmp_path / "bridge.html", tmp_path / "bridge.md"
    assert main(["verify", str(path), "--transcript", THREAD, "--format", "html", "-o", str(page)]) == 0
    assert main(["verify", str(path), "--transcript", THREAD, "--format", "md", "-o", str(notes)]) == 0
    assert main(["verify", str(path), "--transcript", THREAD, "-o", str(notes)]) == 2  # exists: no --force
    assert main(["verify", str(path), "--transcript", "no-such-thread"]) == 2
    assert stat.S_IMODE(page.stat().st_mode) == 0o600
    html = page.read_text()
    assert "<script" not in html and "<img" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;/pre&gt;&lt;img src=x onerror=alert(1)&gt;" in html and "default-src 'none'" in html
    assert "signed with the new key" in html and "initech agrees" in html
    md = notes.read_text()
    outside = _outside_code_blocks(md)
    assert "javascript" not in outside and "<script" not in outside and "<img" not in outside
    assert all(body.split("\n")[0] in md for body in HOSTILE)


def _outside_code_blocks(markdown: str) -> str:
    """The lines of a Markdown text that are not inside a fenced code block."""
    kept, fence = [], None
    for line in markdown.splitlines():
        stripped = line.strip()
        if fence is None and stripped.startswith("```"):
            fence = stripped
        elif fence is not None and stripped == fence:
            fence = None
        elif fence is None:
            kept.append(line)
    return "\n".join(kept)


def test_verify_needs_no_node_settings_or_token(tmp_path):
    """Usage errors are exit 2 without touching anything a node would have."""
    done = _verify_elsewhere(tmp_path, str(tmp_path / "nothing.json"))
    assert done.returncode == 2 and "cannot read" in done.stderr
    assert os.listdir(tmp_path / "elsewhere") == []
