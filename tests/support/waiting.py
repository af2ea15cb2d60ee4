"""Waiting on a condition with a deadline: the only way tests synchronise."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(
    condition: Callable[[], bool],
    timeout: float = 30.0,
    what: str = "condition",
    status: Callable[[], object] | None = None,
    on_timeout: Callable[[], None] | None = None,
) -> None:
    """Poll `condition` until true; on timeout run `on_timeout`, then fail naming `what` and
    the last `status()`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    if on_timeout is not None:
        on_timeout()
    seen = f" (last status: {status()})" if status is not None else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{seen}")
