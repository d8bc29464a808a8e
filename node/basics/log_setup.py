"""Logging for the node process: plain lines for people, one JSON object per line for
collectors. Request bodies and tokens are never passed to the logger in the first place; as a
second line of defence, both formats blank anything shaped like one of our secrets (a library
may quote a raw request line, as aiohttp does for a malformed Authorization header)."""

from __future__ import annotations

import json
import logging
import re
import sys

__all__ = ["configure_logging", "redact"]


# Tokens (`node.workspace.tokens`: an + kind + _ + urlsafe base64), webhook secrets (`whsec_` + base64) and
# whatever follows "Bearer". A token's first 10 characters are its public prefix and stay.
_SECRETS = re.compile(r"\b(an[a-z]{3}_[A-Za-z0-9_-]{4})[A-Za-z0-9_-]{8,}|\b(whsec_)[A-Za-z0-9+/=]{8,}"
                      r"|\b([Bb]earer\s+)[^\s'\"\\,;]+")


def redact(text: str) -> str:
    return _SECRETS.sub(lambda m: (m[1] or m[2] or m[3]) + "[redacted]", text)


class _PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, *, as_json: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonFormatter() if as_json else _PlainFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log would print every request line; keep it at warnings unless debugging.
    logging.getLogger("aiohttp.access").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
