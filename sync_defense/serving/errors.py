"""One error policy for every step: what the client is told, what only the server log keeps.

A request that is at fault (a bad upload, inputs that break the contract) gets its own message
back; anything else is a bug or an outage, logged with its traceback under an incident id while
the client gets the id and no internals (no tracebacks, no server paths).
"""

from __future__ import annotations

import traceback
import uuid


class StepError(Exception):
    """This request cannot be served; the message is safe to send to the client."""


def client_message(step: str, exc: BaseException) -> tuple[str, str | None]:
    """``(message for the client, server log entry or None)`` for an exception raised by ``step``."""
    from sync_defense.preprocessing import MediaError  # here: the graph stubs use ``internal_error`` without OpenCV/PyAV

    if isinstance(exc, MediaError):
        return f"bad video: {exc}", None
    if isinstance(exc, StepError):
        return str(exc), None
    return internal_error(step, exc)


def internal_error(step: str, exc: BaseException) -> tuple[str, str]:
    """A bug or an outage: the client gets an incident id, the server log the traceback under it."""
    incident = uuid.uuid4().hex[:12]
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return (f"{step} failed: internal error {incident} (the server log has the details)",
            f"{step} internal error {incident}: {trace}")
