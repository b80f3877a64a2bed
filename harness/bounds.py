"""Each test's time bound, and the time it does not count: an operator doing a physical act.

The plugin bounds every test (`asyncio.timeout`) so that a silent charger cannot hang the run. A
person plugging in an EV at a prompt is not the charger being slow: while a rig act that waits on a
human runs, the bound is pushed back by the time it takes (at most the act's own allowance, itself
bounded), so a manual run is judged on the charger's time alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator

CURRENT: contextvars.ContextVar[asyncio.Timeout | None] = contextvars.ContextVar("harness_test_bound", default=None)


@contextlib.asynccontextmanager
async def not_counted(allowance: float) -> AsyncIterator[None]:
    """Time spent inside does not count against the running test's bound (up to `allowance` seconds)."""
    scope = CURRENT.get()
    deadline = scope.when() if scope is not None else None
    if scope is None or deadline is None or allowance <= 0 or scope.expired():
        yield
        return
    loop = asyncio.get_running_loop()
    began = loop.time()
    scope.reschedule(deadline + allowance)  # up front: the old deadline must not fire mid-act
    try:
        yield
    finally:
        if not scope.expired():
            scope.reschedule(deadline + min(allowance, loop.time() - began))
