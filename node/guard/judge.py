"""The pluggable judge: the company's own code or service decides what rules cannot.

Two kinds, one contract. The judge is given a JSON object
``{"author", "network", "thread", "field", "text", "findings"}`` (`text` after any redaction,
`findings` the rules that already matched) and answers ``{"decision": "allow" | "block" |
"flag", "reason": "..."}``:

- ``python = "module:function"``: a callable the node can import, sync or async (sync ones run
  in a worker thread, so a slow one cannot stall the node);
- ``url``: an HTTP(S) endpoint, POSTed the object; its answer is read up to 4 KiB.

Whatever goes wrong (timeout, exception, bad answer, HTTP error) is an error, and `on_error`
decides: by default the message is blocked (fail closed).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from node.guard.rules import JudgeSettings

__all__ = ["Judge", "JudgeAnswer", "JudgeResult"]

log = logging.getLogger(__name__)

_MAX_ANSWER_BYTES = 4 * 1024


class JudgeAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    decision: Literal["allow", "block", "flag"]
    reason: str = Field("", max_length=500)


@dataclass(frozen=True, slots=True)
class JudgeResult:
    decision: Literal["allow", "block", "flag"]
    reason: str
    failed: bool = False  # the judge did not answer properly: `decision` is `on_error`'s


class Judge:
    def __init__(self, settings: JudgeSettings) -> None:
        self.settings = settings
        self._function: Callable[..., Any] | None = None

    async def decide(self, request: dict[str, Any]) -> JudgeResult:
        timeout = self.settings.timeout_ms / 1000
        try:
            raw = await asyncio.wait_for(self._ask(request, timeout), timeout)
            answer = JudgeAnswer.model_validate(raw)
        except TimeoutError:
            return self._failed(f"no answer within {self.settings.timeout_ms} ms")
        except ValidationError:
            return self._failed("its answer was not {\"decision\": \"allow\" | \"block\" | \"flag\"}")
        except Exception as e:  # the company's code: any failure is a failure to judge
            return self._failed(f"{type(e).__name__}: {str(e)[:200]}")
        return JudgeResult(answer.decision, answer.reason)

    def _failed(self, why: str) -> JudgeResult:
        log.warning("outbound judge failed (%s); applying on_error=%s", why, self.settings.on_error)
        return JudgeResult(self.settings.on_error, f"judge failed: {why}", failed=True)

    async def _ask(self, request: dict[str, Any], timeout: float) -> Any:
        if self.settings.url is not None:
            return await self._post(self.settings.url, request, timeout)
        function = self._load()
        if inspect.iscoroutinefunction(function):
            return await function(request)
        return await asyncio.to_thread(function, request)

    def _load(self) -> Callable[..., Any]:
        if self._function is None:
            assert self.settings.python is not None
            found = pkgutil.resolve_name(self.settings.python)
            if not callable(found):
                raise TypeError(f"{self.settings.python} is not callable")
            self._function = found
        return self._function

    @staticmethod
    async def _post(url: str, request: dict[str, Any], timeout: float) -> Any:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session, \
                session.post(url, json=request, allow_redirects=False) as response:
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")
            body = await response.content.read(_MAX_ANSWER_BYTES + 1)
            if len(body) > _MAX_ANSWER_BYTES:
                raise RuntimeError(f"answer longer than {_MAX_ANSWER_BYTES} bytes")
            return json.loads(body)
