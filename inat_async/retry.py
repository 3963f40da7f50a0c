"""Retry policy: exponential backoff with full jitter, and Retry-After parsing."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a failing request is tried again.

    ``attempts`` counts every try, the first included. The n-th wait is drawn
    uniformly from ``[0, min(cap, base * 2**n)]`` ("full jitter"), so that many
    workers failing together do not come back together.
    """

    attempts: int = 5
    base: float = 1.0
    cap: float = 60.0

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """The wait before retry number ``retry`` (0 for the first retry)."""
        ceiling = min(self.cap, self.base * 2**retry)
        return (rng or random).uniform(0, ceiling)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
