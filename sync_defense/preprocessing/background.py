"""Face-model calls on the worker threads while the calling thread decodes the next frames.

The face models release the GIL, so decoding and detection overlap; a bound on the calls in flight
bounds the decoded frames held in memory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from . import landmarks

FRAMES_IN_FLIGHT = 8  # frames waiting for the face models: bounds the pixels held (8 x 0.9 MB at 640x480)


class InBackground:
    """Face-model calls on the worker threads (``landmarks.in_background``) while this thread decodes.

    At most ``limit`` calls wait (each holds a frame); results are handed to ``take(key, result)``
    in the order submitted. Leaving the block early (a refused upload) cancels what has not started.
    """

    def __init__(self, take: Callable[[Any, Any], None], limit: int = FRAMES_IN_FLIGHT) -> None:
        self._take, self._limit = take, limit
        self._waiting: deque[tuple[Any, Future]] = deque()

    def submit(self, key: Any, fn: Callable[..., Any], *args: Any) -> None:
        self._waiting.append((key, landmarks.in_background(fn, *args)))
        self._collect(self._limit)

    def _collect(self, keep: int) -> None:
        while len(self._waiting) > keep:
            key, call = self._waiting.popleft()
            self._take(key, call.result())

    def __enter__(self) -> InBackground:
        return self

    def __exit__(self, error: type[BaseException] | None, *_: object) -> None:
        try:
            if error is None:
                self._collect(0)
        finally:
            for _, call in self._waiting:
                call.cancel()
