"""Retrying HTTP calls to a service: exponential backoff with jitter, ``Retry-After``, a total deadline.

The deadline is the point: the Function host kills an invocation at its timeout, so
every wait and every request timeout is cut to what is left of the budget rather
than counted in attempts alone.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

log = logging.getLogger(__name__)

#: Statuses worth another attempt: request timeout, throttling and server-side failures.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    #: Total budget for all attempts and waits. The Functions default timeout is 5 minutes
    #: (Consumption); the budget leaves the rest of the invocation room to log and return.
    deadline_seconds: float = 120.0
    max_attempts: int = 8
    base_delay: float = 1.0
    max_delay: float = 30.0
    connect_timeout: float = 10.0
    read_timeout: float = 60.0


class RetryExhausted(Exception):
    """No attempt succeeded within the policy; ``last`` describes the final failure."""

    def __init__(self, message: str, last: str) -> None:
        super().__init__(message)
        self.last = last


def parse_retry_after(headers: requests.structures.CaseInsensitiveDict | dict[str, str],
                      now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or an HTTP date) or Azure's ``retry-after-ms``."""
    for name, scale in (("retry-after-ms", 0.001), ("x-ms-retry-after-ms", 0.001)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                pass
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def backoff_delay(attempt: int, policy: RetryPolicy, rand: Callable[[], float] = random.random) -> float:
    """Full jitter: a random wait up to the exponential cap, so that many Functions
    throttled together do not come back together."""
    cap = min(policy.max_delay, policy.base_delay * (2 ** (attempt - 1)))
    return cap * rand()


@dataclass
class Retrier:
    policy: RetryPolicy = RetryPolicy()
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    rand: Callable[[], float] = random.random

    def call(self, send: Callable[[tuple[float, float]], requests.Response], what: str) -> requests.Response:
        """Call ``send(timeout)`` until it returns a non-retryable response.

        Returns the first response whose status is not retryable (success or a 4xx the
        caller turns into an error). Raises :class:`RetryExhausted` when the attempts or
        the deadline run out on retryable failures.
        """
        started = self.clock()
        deadline = started + self.policy.deadline_seconds
        last = "no attempt made"
        for attempt in range(1, self.policy.max_attempts + 1):
            remaining = deadline - self.clock()
            if remaining <= 0:
                break
            timeout = (min(self.policy.connect_timeout, remaining), min(self.policy.read_timeout, remaining))
            retry_after: float | None = None
            try:
                response = send(timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code not in RETRYABLE_STATUSES:
                    return response
                retry_after = parse_retry_after(response.headers)
                last = f"HTTP {response.status_code} {response.reason}: {_excerpt(response)}"
                response.close()
            if attempt == self.policy.max_attempts:
                break
            delay = max(backoff_delay(attempt, self.policy, self.rand), retry_after or 0.0)
            remaining = deadline - self.clock()
            if delay >= remaining:
                last += f" (next attempt due in {delay:.1f}s, after the {self.policy.deadline_seconds:.0f}s budget)"
                break
            log.warning("%s: attempt %d failed (%s); retrying in %.1fs", what, attempt, last, delay)
            self.sleep(delay)
        raise RetryExhausted(
            f"{what}: gave up after {attempt} attempt(s) in {self.clock() - started:.1f}s; last failure: {last}",
            last,
        )


def _excerpt(response: requests.Response, limit: int = 300) -> str:
    try:
        text = response.text
    except Exception:  # a body that cannot be decoded says nothing more than the status
        return ""
    return " ".join(text.split())[:limit]
