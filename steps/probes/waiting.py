"""Waiting as a strategy: poll a function until it returns a value, within a deadline."""
from __future__ import annotations

import time
from typing import Callable, Tuple, Type, TypeVar

T = TypeVar("T")


class WaitTimeout(Exception):
    """The awaited condition did not hold in time; the message carries the last observation."""


def wait_until(
    check: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.25,
    transient: Tuple[Type[BaseException], ...] = (),
    description: str = "condition",
) -> T:
    """Call `check` until it returns a truthy value and return that value.

    Exceptions listed in `transient` count as "not yet". Raises WaitTimeout after `timeout`
    seconds, naming the attempts, the time waited and the last value or error seen.
    """
    started = time.monotonic()
    attempts = 0
    last: object = None
    while True:
        attempts += 1
        try:
            value = check()
            if value:
                return value
            last = value
        except transient as error:
            last = error
        waited = time.monotonic() - started
        if waited >= timeout:
            raise WaitTimeout(
                f"{description}: failed after {attempts} attempts, waited {waited:.1f} s: last {last!r}"
            )
        time.sleep(min(interval, max(0.0, timeout - waited)))


def poll(
    check: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.25,
    transient: Tuple[Type[BaseException], ...] = (),
) -> T | None:
    """wait_until for a caller that reports the outcome itself: the first truthy value of `check`
    within `timeout` s, or None."""
    try:
        return wait_until(check, timeout=timeout, interval=interval, transient=transient)
    except WaitTimeout:
        return None
