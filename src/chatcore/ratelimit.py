"""A token bucket per connection, on the clock the core is given."""

from __future__ import annotations


class TokenBucket:
    """Allows ``burst`` messages at once and ``rate`` per second after that."""

    __slots__ = ("_burst", "_last", "_rate", "_tokens", "strikes")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = now
        self.strikes = 0
        """Messages refused in a row; reset by the next allowed one."""

    def allow(self, now: float) -> bool:
        # A clock that steps backwards refills nothing, and takes nothing either.
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            self.strikes = 0
            return True
        self.strikes += 1
        return False
