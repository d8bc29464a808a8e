"""Judges the guard tests plug in as "module:function", as a company would its own."""

from __future__ import annotations

import asyncio
from typing import Any


def no_payment_details(request: dict[str, Any]) -> dict[str, str]:
    """Sync: what regular expressions cannot judge well, a company's own code can."""
    if "iban" in request["text"].lower():
        return {"decision": "block", "reason": "payment details go through finance"}
    if "invoice" in request["text"].lower():
        return {"decision": "flag", "reason": "mentions an invoice"}
    return {"decision": "allow"}


async def too_slow(request: dict[str, Any]) -> dict[str, str]:
    await asyncio.sleep(5)
    return {"decision": "allow"}


def broken(request: dict[str, Any]) -> dict[str, str]:
    return {"verdict": "fine"}  # not the contract
