"""Signed HTTPS requests to other nodes. The only place this node opens connections to peers.

Each request is signed with `federation.request_signing` over exactly the bytes sent, goes to
the peer's endpoint address, and has its certificate checked against the peer's *server name*
(`server_hostname`), so a peer reachable at an IP address still proves its name. Transport
failures become `PeerUnreachable`; error answers become `PeerRefused`; callers never see
aiohttp's exceptions.
"""

from __future__ import annotations

import io
import ssl
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import aiohttp
from yarl import URL

from federation.canonical_json import encode_canonical, parse_json
from federation.errors import CanonicalJsonError
from federation.keys import SigningKey
from federation.request_signing import sign_request
from node.basics.clock import Clock
from node.basics.errors import PeerRefused, PeerUnreachable, PeerUntrusted
from node.federation.tls import PeerTrust, host_of

__all__ = ["FEDERATION_PREFIX", "PeerClient"]

FEDERATION_PREFIX = "/_agentnet/v1"
# A catch-up page of 500 events at up to 64 KiB each is the largest answer a peer should send.
_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
# aiohttp warns when more than 1 MiB of bytes is written in one go; stream above that.
_STREAM_ABOVE_BYTES = 1024 * 1024
# Long enough for a loaded peer to sequence a full batch, short enough to notice a dead one.
_DEFAULT_TIMEOUT_S = 30


class PeerClient:
    def __init__(self, session: aiohttp.ClientSession, trust: PeerTrust, *, server_name: str,
                 signing_key: SigningKey, clock: Clock) -> None:
        self._session = session
        self._trust = trust
        self._server = server_name
        self._key = signing_key
        self._clock = clock
        # Told about every peer that just answered: proof it is up (see node.federation.delivery).
        self.on_reachable: Callable[[str], None] = lambda server: None

    async def call(self, method: str, endpoint: str, destination: str, path: str,
                   payload: dict[str, Any] | bytes | None = None, *,
                   timeout_s: float = _DEFAULT_TIMEOUT_S, announce: bool = True) -> dict[str, Any]:
        """`payload` is a JSON object, or its canonical bytes already (spliced stored events).
        A successful answer is announced to `on_reachable` unless `announce` is false (the
        delivery worker's own sends: it reads their answers itself)."""
        if isinstance(payload, bytes):
            body = payload
        else:
            body = encode_canonical(payload) if payload is not None else b""
        full_path = FEDERATION_PREFIX + path
        headers = {
            "Authorization": sign_request(self._key, method=method, path=full_path, origin=self._server,
                                          destination=destination, body=body, now_ms=self._clock.now_ms()),
            "Content-Type": "application/json",
        }
        url = URL(endpoint.rstrip("/") + full_path, encoded=True)
        with self._transport(destination):
            # Large bodies go as a stream, so writing them never blocks the event loop.
            streamed = io.BytesIO(body) if len(body) > _STREAM_ABOVE_BYTES else body
            async with self._session.request(
                method, url, data=streamed, headers=headers, ssl=self._trust.context(),
                server_hostname=host_of(destination),
                timeout=aiohttp.ClientTimeout(total=timeout_s), allow_redirects=False,
            ) as response:
                raw = await _read_capped(response)
                status = response.status
                retry_after = response.headers.get("Retry-After")
        if raw is None:
            raise PeerUnreachable(f"{destination} sent an answer over {_MAX_RESPONSE_BYTES} bytes")
        try:
            data = parse_json(raw, max_bytes=_MAX_RESPONSE_BYTES) if raw else {}
        except CanonicalJsonError as e:
            raise PeerUnreachable(f"{destination} sent an answer that is not JSON: {e.message}") from None
        if not isinstance(data, dict):
            raise PeerUnreachable(f"{destination} sent an answer that is not a JSON object")
        if status >= 400:  # an error answer proves nothing about delivery: never a wake
            raise _refused(destination, status, raw, retry_after)
        if announce:
            self.on_reachable(destination)
        return data

    def _transport(self, destination: str) -> AbstractContextManager[None]:
        return _transport_errors(destination, self._trust)

    async def fetch_file(self, endpoint: str, destination: str, path: str, *, max_bytes: int,
                         timeout_s: float = 120) -> tuple[bytes, str]:
        """GET a file's bytes and media type; PeerUnreachable past `max_bytes` (read no further)
        or on any transport failure, PeerRefused on an error answer."""
        full_path = FEDERATION_PREFIX + path
        headers = {"Authorization": sign_request(self._key, method="GET", path=full_path, origin=self._server,
                                                 destination=destination, body=b"", now_ms=self._clock.now_ms())}
        url = URL(endpoint.rstrip("/") + full_path, encoded=True)
        with self._transport(destination):
            async with self._session.get(
                url, headers=headers, ssl=self._trust.context(), server_hostname=host_of(destination),
                timeout=aiohttp.ClientTimeout(total=timeout_s), allow_redirects=False,
            ) as response:
                if response.status >= 400:
                    raw = await _read_capped(response, 64 * 1024)
                    raise _refused(destination, response.status, raw, response.headers.get("Retry-After"))
                data = await _read_capped(response, max_bytes)
                media_type = response.content_type
        if data is None:
            raise PeerUnreachable(f"{destination} sent a file over the {max_bytes} bytes its author signed")
        self.on_reachable(destination)
        return data, media_type


@contextmanager
def _transport_errors(destination: str, trust: PeerTrust) -> Iterator[None]:
    """aiohttp's and the socket's failures as this node's errors, naming the peer."""
    try:
        yield
    except aiohttp.ClientConnectorCertificateError as e:
        raise PeerUntrusted(f"{destination} showed a TLS certificate this node does not trust "
                            f"({_verify_reason(e)}): {trust.describe()}") from e
    except (TimeoutError, aiohttp.ClientError, ssl.SSLError, OSError) as e:
        # A connector error's text embeds the SSL context's repr; its OS error says it all.
        detail = e.os_error if isinstance(e, aiohttp.ClientConnectorError) else e
        raise PeerUnreachable(f"{destination} is unreachable: {type(e).__name__}: {detail}") from e


def _refused(destination: str, status: int, raw: bytes | None, retry_after: str | None) -> PeerRefused:
    """A peer's error answer as PeerRefused, with its code and message if it sent our error form."""
    try:
        data = parse_json(raw, max_bytes=_MAX_RESPONSE_BYTES) if raw else {}
    except CanonicalJsonError:
        data = {}
    found = data.get("error") if isinstance(data, dict) else None
    error = found if isinstance(found, dict) else {}
    code, message = str(error.get("code", "http_error"))[:64], str(error.get("message", ""))[:300]
    return PeerRefused(f"{destination} refused: {status} {code}: {message}", peer_status=status, peer_code=code,
                       retry_after_s=_retry_after_s(retry_after))


def _retry_after_s(value: str | None) -> int | None:
    """A Retry-After in seconds (the only form peers send), capped at an hour; None if absent."""
    if value is None or not value.strip().isdigit() or len(value.strip()) > 9:
        return None
    return min(int(value.strip()), 3600)


async def _read_capped(response: aiohttp.ClientResponse, cap: int = _MAX_RESPONSE_BYTES) -> bytes | None:
    """The whole body (`content.read(n)` returns only what is buffered), or None past the cap."""
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _verify_reason(error: aiohttp.ClientConnectorCertificateError) -> str:
    """OpenSSL's reason, e.g. "self-signed certificate" or "Hostname mismatch"."""
    cause = error.certificate_error
    return getattr(cause, "verify_message", None) or getattr(cause, "reason", None) or type(cause).__name__
