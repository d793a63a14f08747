"""The openai engine: any OpenAI-compatible endpoint (a hosted API, `vllm serve`, SGLang, a gateway).

One Ray Data actor stage per pass, like the local engines: rows in (`prompt`, `sample_seed`,
optional `max_tokens`), rows out with `generated_text`, `num_input_tokens`, `num_generated_tokens`
(from the response's `usage`), and two columns of its own: `engine_error` ("" when answered, else a
one-line reason) and `engine_retries`. A request that exhausts its retries is a row with empty text
and an `engine_error`, never an exception: the pass goes on and the caller decides what the row
means (augment: a candidate rejected with `engine_error`; evaluate: a sample scored wrong).

Why not ray.data.llm's `HttpRequestProcessorConfig` (Ray 2.60, `HttpRequestUDF`): a request that
exhausts its retries raises and fails the whole pass (`should_continue_on_error` is not wired into
the HTTP stage); HTTP 500 and other non-retryable statuses come back as if they were answers;
`Retry-After` is ignored and the backoff has no jitter; `qps` is an int, applied per batch and per
actor (and the pacing loop only builds request objects that are then awaited one after another);
there is no request timeout and no cap on requests in flight across batches; the key has to be put
into `headers`, a plain constructor argument. So this is a small aiohttp client of our own (aiohttp
is what ray.data.llm itself uses), run as an async Ray Data UDF: one event loop per actor, a
pacing limiter (qps) and a semaphore (max_concurrent_requests) shared by every batch the actor
has in flight.

The API key never enters the config: `engine.api_key_env` names the variable. The driver reads it
and hands it to the actors wrapped in `Secret` (whose repr is `***`); error messages are scrubbed
of it before they become rows.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from metamath_ray.engines.registry import ReplicaPlan
from metamath_ray.engines.scripted import truncate_at_stop

if TYPE_CHECKING:
    from metamath_ray.engines.config import EngineConfig, SamplingConfig

# The OpenAI API takes at most 4 stop strings; every stop string is also applied to the answer here.
API_MAX_STOP = 4
BASE_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
MAX_RETRY_AFTER_S = 120.0  # a server asking for longer is treated as asking for this long
RETRYABLE_STATUS = frozenset({408, 429})
ERROR_DETAIL_CHARS = 200


class Secret:
    """A value that prints as *** (the API key on its way to the actors)."""

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__


# ---------------------------------------------------------------------------------------------
# Pure pieces: what to send, what came back, whether to try again


def build_request(api: str, model: str, system_prompt: str, row: dict, sampling: SamplingConfig) -> tuple[str, dict]:
    """(path under base_url, JSON body) for one row. The chat API gets MetaMath's convention: the
    system message, then the whole few-shot prompt as one user message."""
    params = sampling.as_vllm(
        sample_seed=None if row.get("sample_seed") is None else int(row["sample_seed"]),
        max_tokens=None if row.get("max_tokens") is None else int(row["max_tokens"]),
    )
    body: dict[str, Any] = {"model": model, "n": 1, **params}
    body["stop"] = params["stop"][:API_MAX_STOP] or None
    if row.get("sample_seed") is not None:  # both APIs take a seed; greedy rows send theirs too
        body["seed"] = int(row["sample_seed"])
    body = {k: v for k, v in body.items() if v is not None}
    if api == "chat":
        system = [{"role": "system", "content": system_prompt}] if system_prompt else []
        body["messages"] = [*system, {"role": "user", "content": str(row["prompt"])}]
        return "/chat/completions", body
    body["prompt"] = str(row["prompt"])
    return "/completions", body


class MalformedResponse(ValueError):
    """A 2xx answer without the fields the API promises."""


def parse_response(api: str, body: Any) -> tuple[str, int, int]:
    """(text, prompt tokens, generated tokens) of a 2xx response body."""
    try:
        choice = body["choices"][0]
        text = choice["message"]["content"] if api == "chat" else choice["text"]
    except (KeyError, IndexError, TypeError):
        raise MalformedResponse("response has no choices[0] text") from None
    usage = body.get("usage") or {}
    return text or "", int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def is_retryable_status(status: int) -> bool:
    """429 (rate limit), 408 (request timeout) and every 5xx; other 4xx are the request's fault."""
    return status in RETRYABLE_STATUS or 500 <= status <= 599


def is_retryable_exception(exc: BaseException) -> bool:
    """Timeouts, refused or dropped connections, a body cut short: the request may succeed next time."""
    import aiohttp

    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, aiohttp.ServerTimeoutError)):
        return True
    return isinstance(exc, json.JSONDecodeError)  # a 2xx whose body broke off mid-JSON


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def backoff_delay(attempt: int, retry_after: float | None, rng: random.Random, base: float = BASE_BACKOFF_S) -> float:
    """Wait before retry number `attempt` (0-based): the server's Retry-After when it sent one
    (plus up to 10% so clients told the same time do not return together), else exponential
    backoff with jitter in [50%, 100%] of base * 2^attempt, capped."""
    if retry_after is not None:
        return retry_after * (1.0 + 0.1 * rng.random())
    return min(MAX_BACKOFF_S, base * (2 ** attempt)) * (0.5 + 0.5 * rng.random())


def one_line(text: str, secret: str | None = None) -> str:
    """An error detail fit for a row and a log: one line, bounded, never the key."""
    if secret:
        text = text.replace(secret, "***")
    text = " ".join(str(text).split())
    return text if len(text) <= ERROR_DETAIL_CHARS else text[: ERROR_DETAIL_CHARS - 3] + "..."


class RateLimiter:
    """Paces request starts at `qps` per second (no bursts): each start takes the next free slot."""

    def __init__(self, qps: float | None, clock: Callable[[], float] = time.monotonic):
        self.interval = 1.0 / qps if qps else 0.0
        self.clock = clock
        self.next_slot = 0.0

    def reserve(self) -> float:
        """Claim a slot; returns how long to wait for it."""
        if not self.interval:
            return 0.0
        now = self.clock()
        slot = max(now, self.next_slot)
        self.next_slot = slot + self.interval
        return slot - now

    async def wait(self) -> None:
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)


# ---------------------------------------------------------------------------------------------
# One request, with its retries


@dataclass
class Outcome:
    """What became of one row's request."""

    text: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    error: str = ""  # "" when answered
    retries: int = 0


@dataclass
class _Attempt:
    outcome: Outcome | None  # final (answered, or an error not worth retrying)
    reason: str = ""  # why this attempt failed, when it may be retried
    retry_after: float | None = None


class OpenAIClient:
    """Sends rows to one endpoint: pacing, a cap on requests in flight, retries, error rows."""

    def __init__(self, *, base_url: str, api: str, model: str, system_prompt: str, sampling: SamplingConfig,
                 api_key: Secret | None, qps: float | None, max_concurrent_requests: int, max_retries: int,
                 request_timeout_s: float, backoff_base_s: float = BASE_BACKOFF_S, seed: int = 0):
        self.base_url = base_url.rstrip("/")
        self.api, self.model, self.system_prompt, self.sampling = api, model, system_prompt, sampling
        self._key = api_key.reveal() if api_key else None
        self.limiter = RateLimiter(qps)
        self.max_concurrent_requests = max_concurrent_requests
        self.max_retries = max_retries
        self.request_timeout_s = request_timeout_s
        self.backoff_base_s = backoff_base_s
        self.rng = random.Random(seed)
        self._session = None
        self._slots: asyncio.Semaphore | None = None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}"} if self._key else {}

    async def _ensure_session(self):
        # Created inside the running loop (aiohttp sessions and semaphores belong to one loop).
        if self._session is None:
            import aiohttp

            self._slots = asyncio.Semaphore(self.max_concurrent_requests)
            self._session = aiohttp.ClientSession(
                headers=self._headers(),
                connector=aiohttp.TCPConnector(limit=self.max_concurrent_requests),
                timeout=aiohttp.ClientTimeout(total=self.request_timeout_s),
            )
        return self._session

    async def close(self) -> None:
        session, self._session = self._session, None  # a request starting now opens a fresh session
        if session is not None:
            await session.close()

    async def complete(self, row: dict, sampling: SamplingConfig | None = None) -> Outcome:
        """The row's text, or after `max_retries` retries an Outcome with `error` set. Never raises
        for what the network or the server did. `sampling`: this request's (default: the client's)."""
        sampling = sampling or self.sampling
        session = await self._ensure_session()
        path, body = build_request(self.api, self.model, self.system_prompt, row, sampling)
        url = self.base_url + path
        reason, retry_after = "", None
        for attempt in range(self.max_retries + 1):
            if attempt:
                await asyncio.sleep(backoff_delay(attempt - 1, retry_after, self.rng, self.backoff_base_s))
            async with self._slots:
                await self.limiter.wait()
                result = await self._attempt(session, url, body, list(sampling.stop))
            if result.outcome is not None:
                result.outcome.retries = attempt
                return result.outcome
            reason, retry_after = result.reason, result.retry_after
        return Outcome(error=one_line(f"{reason} (gave up after {self.max_retries + 1} attempts)", self._key),
                       retries=self.max_retries)

    async def _attempt(self, session, url: str, body: dict, stop: list[str]) -> _Attempt:
        try:
            async with session.post(url, json=body) as resp:
                status = resp.status
                if 200 <= status < 300:
                    text, tokens_in, tokens_out = parse_response(self.api, json.loads(await resp.read()))
                    return _Attempt(Outcome(truncate_at_stop(text, stop), tokens_in, tokens_out))
                detail = one_line(f"HTTP {status}: {_error_message(await resp.read())}", self._key)
                if not is_retryable_status(status):
                    return _Attempt(Outcome(error=detail))
                return _Attempt(None, detail, parse_retry_after(resp.headers.get("Retry-After")))
        except MalformedResponse as e:
            return _Attempt(Outcome(error=one_line(f"malformed response: {e}", self._key)))
        except Exception as e:  # noqa: BLE001 - classified below; anything else is a bug worth a row, not a crash
            detail = one_line(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__, self._key)
            if is_retryable_exception(e):
                return _Attempt(None, detail)
            return _Attempt(Outcome(error=detail))


def _error_message(raw: bytes) -> str:
    """The `error.message` of an OpenAI error body, else the start of the body."""
    text = raw[:2000].decode("utf-8", "replace")
    try:
        err = json.loads(text).get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
    except (ValueError, AttributeError):
        pass
    return text or "(empty body)"


# ---------------------------------------------------------------------------------------------
# Ray edge: the actor stage


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _outcome_columns(outcome: Outcome) -> dict:
    return {"generated_text": outcome.text, "num_input_tokens": outcome.tokens_in,
            "num_generated_tokens": outcome.tokens_out, "engine_error": outcome.error,
            "engine_retries": outcome.retries}


class OpenAIGenerator:
    """An async actor, so every batch it holds shares one client, one pacing limiter and one cap on
    requests in flight: a Ray Data UDF (`__call__`, one pass) or a long-lived replica (`generate`,
    each call with its own sampling)."""

    def __init__(self, client_kwargs: dict):
        self.client = OpenAIClient(**client_kwargs)
        self.batches_in_flight = 0

    async def generate(self, rows: list[dict], sampling: SamplingConfig | None = None) -> list[dict]:
        self.batches_in_flight += 1
        try:
            outcomes = await asyncio.gather(*(self.client.complete(r, sampling) for r in rows))
        finally:
            self.batches_in_flight -= 1
            if not self.batches_in_flight:  # idle: close the connections (a pass may be the last)
                await self.client.close()
        return [{**row, **_outcome_columns(o)} for row, o in zip(rows, outcomes)]

    async def __call__(self, batch: dict) -> dict:
        n = len(batch["prompt"])
        rows = await self.generate([{k: _plain(v[i]) for k, v in batch.items()} for i in range(n)])
        out = dict(batch)
        for key in _outcome_columns(Outcome()):
            out[key] = [r[key] for r in rows]
        return out


def read_api_key(engine: EngineConfig) -> Secret | None:
    """The key from the variable `engine.api_key_env` names (on the driver); a one-line error when unset."""
    if not engine.api_key_env:
        return None
    value = os.environ.get(engine.api_key_env, "")
    if not value:
        raise ValueError(f"engine.api_key_env={engine.api_key_env}: that environment variable is not set or empty")
    return Secret(value)


def preflight(engine: EngineConfig) -> None:
    """Before any work: the key variable `engine.api_key_env` names must be set (one-line error)."""
    read_api_key(engine)


def client_kwargs(engine: EngineConfig, sampling: SamplingConfig, replicas: int) -> dict:
    """The settings of one actor's client: qps and the in-flight cap are split over the replicas."""
    return {
        "base_url": engine.base_url, "api": engine.api, "model": engine.model,
        "system_prompt": engine.system_prompt, "sampling": sampling, "api_key": read_api_key(engine),
        "qps": engine.qps / replicas if engine.qps else None,
        "max_concurrent_requests": max(1, engine.max_concurrent_requests // replicas),
        "max_retries": engine.max_retries, "request_timeout_s": engine.request_timeout_s,
    }


def _batches_in_flight(engine: EngineConfig, kwargs: dict) -> int:
    """Enough batches per actor that the request cap, not batch boundaries, limits concurrency."""
    return max(2, -(-kwargs["max_concurrent_requests"] // engine.batch_size) + 1)


def openai_replica(engine: EngineConfig) -> ReplicaPlan:
    """A replica holding the HTTP client (its share of qps and of the in-flight cap); no CPU reserved:
    it waits on the network."""
    from metamath_ray.engines.config import SamplingConfig

    kwargs = client_kwargs(engine, SamplingConfig(), engine.replicas)  # each call brings its sampling
    return ReplicaPlan(OpenAIGenerator, {"client_kwargs": kwargs}, {"num_cpus": 0},
                       batches_in_flight=_batches_in_flight(engine, kwargs))


def build_openai_stage(engine: EngineConfig, sampling: SamplingConfig) -> Callable:
    kwargs = client_kwargs(engine, sampling, engine.replicas)  # a missing key fails here, on the driver
    batches_in_flight = _batches_in_flight(engine, kwargs)

    def stage(ds):
        from ray.data import ActorPoolStrategy

        pool = ActorPoolStrategy(size=engine.replicas, max_concurrent_calls_per_actor=batches_in_flight,
                                 max_tasks_in_flight_per_actor=batches_in_flight)
        return ds.map_batches(
            OpenAIGenerator, fn_constructor_kwargs={"client_kwargs": kwargs}, batch_size=engine.batch_size,
            batch_format="numpy", compute=pool, num_cpus=0,
        )

    return stage
