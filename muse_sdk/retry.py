"""The one retry policy every provider shares, built from tenacity's composable pieces.

Only errors marked ``retryable`` (429, 408, 409, 5xx, connection errors, timeouts) are retried;
waits are exponential with full jitter, a server's ``Retry-After`` is honoured up to
``max_retry_after_s`` (a longer one is raised at once, for the caller to decide), and an overall
deadline bounds the whole call, waits included.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from muse_sdk.errors import ProviderError, RateLimitError

if TYPE_CHECKING:  # tenacity is imported on the first retry: most calls never need it
    from tenacity import RetryCallState
    from tenacity.stop import stop_base

__all__ = ["DEFAULT_MAX_ATTEMPTS", "RetryPolicy", "RetrySettings", "is_retryable"]

T = TypeVar("T")
logger = logging.getLogger("muse_sdk.retry")
#: Told of each failed attempt that will be retried: ``(error, attempt number, wait in s)``.
OnRetry = Callable[[Exception, int, float], None]

DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_INITIAL_WAIT_S = 0.5
DEFAULT_MULTIPLIER = 2.0
DEFAULT_MAX_WAIT_S = 8.0
DEFAULT_MAX_RETRY_AFTER_S = 60.0


class RetrySettings(BaseModel):
    """The ``retry`` table of a profile."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1, le=100)
    initial_wait_s: float = Field(default=DEFAULT_INITIAL_WAIT_S, ge=0)
    multiplier: float = Field(default=DEFAULT_MULTIPLIER, ge=1)
    max_wait_s: float = Field(default=DEFAULT_MAX_WAIT_S, ge=0)
    #: The longest server-given wait (``Retry-After``) slept before a retry; a longer one raises
    #: :class:`~muse_sdk.errors.RateLimitError` at once, with ``.retry_after`` set.
    max_retry_after_s: float = Field(default=DEFAULT_MAX_RETRY_AFTER_S, ge=0)
    deadline_s: float | None = Field(default=None, gt=0)
    jitter: bool = True


def is_retryable(exc: BaseException) -> bool:
    """Tell whether a later attempt may fix this error (a retryable provider error)."""
    return isinstance(exc, ProviderError) and exc.retryable


class RetryPolicy:
    """Retry a call on retryable provider errors.

    ``sleep`` / ``async_sleep`` can be injected so that tests never really wait.
    ``result, attempts = policy.call(fn)`` runs ``fn`` until it succeeds or the policy gives up,
    re-raising the last error.
    """

    def __init__(
        self,
        settings: RetrySettings | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        **overrides: Any,
    ) -> None:
        base = settings or RetrySettings()
        self.settings = (
            RetrySettings.model_validate({**base.model_dump(), **overrides}) if overrides else base
        )
        self._sleep = sleep
        self._async_sleep = async_sleep

    def __repr__(self) -> str:
        s = self.settings
        return f"RetryPolicy(max_attempts={s.max_attempts}, deadline_s={s.deadline_s})"

    def should_retry(self, exc: BaseException) -> bool:
        """Retry a retryable error, unless the server asked for a wait above the cap."""
        if not is_retryable(exc):
            return False
        wait = exc.retry_after if isinstance(exc, RateLimitError) else None
        if wait is not None and wait > self.settings.max_retry_after_s:
            exc.add_note(
                f"not retried: the server asked to wait {wait:g}s, more than "
                f"max_retry_after_s={self.settings.max_retry_after_s:g}s; retry later yourself, "
                "or raise retry={'max_retry_after_s': ...}"
            )
            return False
        return True

    def wait_s(self, state: RetryCallState) -> float:
        """Seconds to wait before the next attempt: ``Retry-After`` or jittered backoff."""
        s = self.settings
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimitError) and exc.retry_after is not None:
            return max(0.0, exc.retry_after)
        ceiling = min(s.max_wait_s, s.initial_wait_s * s.multiplier ** (state.attempt_number - 1))
        return random.uniform(0, ceiling) if s.jitter else ceiling

    def _stop(self, deadline_s: float | None) -> stop_base:
        from tenacity import stop_after_attempt, stop_before_delay

        stop: stop_base = stop_after_attempt(self.settings.max_attempts)
        if deadline_s is not None:
            stop = stop | stop_before_delay(deadline_s)
        return stop

    def _options(self, deadline_s: float | None, on_retry: OnRetry | None) -> dict[str, Any]:
        from tenacity import retry_if_exception

        def before_sleep(state: RetryCallState) -> None:
            self._log_retry(state)
            exc = state.outcome.exception() if state.outcome else None
            if on_retry is not None and isinstance(exc, Exception):
                on_retry(
                    exc, state.attempt_number, state.next_action.sleep if state.next_action else 0.0
                )

        return {
            "stop": self._stop(deadline_s),
            "wait": self.wait_s,
            "retry": retry_if_exception(self.should_retry),
            "before_sleep": before_sleep,
            "reraise": True,
        }

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        logger.info(
            "attempt %d/%d failed (%s: %s); retrying in %.2fs",
            state.attempt_number,
            self.settings.max_attempts,
            type(exc).__name__,
            exc,
            wait,
        )

    def _deadline(self, deadline_s: float | None, spent_s: float) -> float | None:
        deadline = min(
            (d for d in (deadline_s, self.settings.deadline_s) if d is not None), default=None
        )
        return None if deadline is None else max(deadline - spent_s, 1e-9)

    def call(
        self,
        fn: Callable[[], T],
        *,
        deadline_s: float | None = None,
        on_retry: OnRetry | None = None,
    ) -> tuple[T, int]:
        """Run ``fn`` with retries; return its result and the number of attempts made.

        ``on_retry(error, attempt, wait_s)`` hears of each failed attempt that is retried.
        """
        start = time.monotonic()
        try:  # the first attempt runs bare: most calls succeed, and tenacity costs ~10 us
            return fn(), 1
        except ProviderError as exc:
            if self.settings.max_attempts == 1 or not self.should_retry(exc):
                raise
            first_failure: list[BaseException] = [exc]

        def attempt() -> T:
            if first_failure:  # replay the first failure so that tenacity waits and counts it
                raise first_failure.pop()
            return fn()

        from tenacity import Retrying

        deadline = self._deadline(deadline_s, time.monotonic() - start)
        retrying = Retrying(sleep=self._sleep, **self._options(deadline, on_retry))
        attempts = 0
        try:
            for state in retrying:
                attempts = state.retry_state.attempt_number
                with state:
                    result = attempt()
                if not state.retry_state.outcome or not state.retry_state.outcome.failed:
                    return result, attempts
        except ProviderError as exc:
            exc.attempts = attempts
            raise
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def acall(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        deadline_s: float | None = None,
        on_retry: OnRetry | None = None,
    ) -> tuple[T, int]:
        """Async twin of :meth:`call`."""
        start = time.monotonic()
        try:
            return await fn(), 1
        except ProviderError as exc:
            if self.settings.max_attempts == 1 or not self.should_retry(exc):
                raise
            first_failure: list[BaseException] = [exc]

        async def attempt() -> T:
            if first_failure:
                raise first_failure.pop()
            return await fn()

        from tenacity import AsyncRetrying

        deadline = self._deadline(deadline_s, time.monotonic() - start)
        retrying = AsyncRetrying(sleep=self._async_sleep, **self._options(deadline, on_retry))
        attempts = 0
        try:
            async for state in retrying:
                attempts = state.retry_state.attempt_number
                with state:
                    result = await attempt()
                if not state.retry_state.outcome or not state.retry_state.outcome.failed:
                    return result, attempts
        except ProviderError as exc:
            exc.attempts = attempts
            raise
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover
