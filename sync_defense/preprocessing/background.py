"""Face-model calls on the worker threads while the calling thread decodes the next frames.

The face models release the GIL (MediaPipe) or run in another process (the served graphs), so
decoding and the models overlap. Frames are sent in chunks of the models' ``chunk`` (one for
MediaPipe, which runs frame by frame; several for the graphs, so that one request carries a batch),
and a bound on the frames waiting bounds the decoded pixels held in memory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from . import landmarks


class InBackground:
    """``batch(items)`` of the submitted items, chunk by chunk, on the worker threads (``landmarks.in_background``).

    ``batch`` answers each item of a chunk, in order; the answers are handed to ``take(key, answer)`` in
    the order submitted. About ``landmarks.models().frames_in_flight`` items wait (each holds a frame): that
    many in chunks sent, and the chunk being filled.
    Leaving the block early (a refused upload) cancels what has not started.
    """

    def __init__(self, batch: Callable[[Sequence[Any]], Sequence[Any]], take: Callable[[Any, Any], None]) -> None:
        models = landmarks.models()
        self._batch, self._take = batch, take
        self._chunk, self._limit = models.chunk, max(1, models.frames_in_flight // models.chunk)
        self._pending: list[tuple[Any, Any]] = []
        self._waiting: deque[tuple[list[Any], Future]] = deque()

    def submit(self, key: Any, item: Any) -> None:
        self._pending.append((key, item))
        if len(self._pending) == self._chunk:
            self._send()
            self._collect(self._limit)

    def _send(self) -> None:
        keys, items = zip(*self._pending, strict=True)
        self._waiting.append((list(keys), landmarks.in_background(self._batch, list(items))))
        self._pending = []

    def _collect(self, keep: int) -> None:
        while len(self._waiting) > keep:
            keys, call = self._waiting.popleft()
            for key, answer in zip(keys, call.result(), strict=True):
                self._take(key, answer)

    def __enter__(self) -> InBackground:
        return self

    def __exit__(self, error: type[BaseException] | None, *_: object) -> None:
        try:
            if error is None:
                if self._pending:
                    self._send()
                self._collect(0)
        finally:
            for _, call in self._waiting:
                call.cancel()
