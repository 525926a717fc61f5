"""Master side: the two ways a fetch ends without an answer.

Apart from the modules that raise them so that ``attempt`` (a cancelled
fetch), ``tunnel`` (a proxy's refusal), ``fetch`` (every other reason) and
``source`` (which reads them) share one definition without a circle.

Imports nothing of hotcfg.
"""

from __future__ import annotations


class FetchFailed(Exception):
    """A fetch gave no document the source accepts.

    Attributes:
        reason: why, naming no secret.
        temporary: no answer in time, or the server cannot answer now (the
            source raises :class:`UnreachableError`, not :class:`SourceError`).
        retry_after_s: what the server's Retry-After asked (capped).
    """

    def __init__(
        self, reason: str, *, temporary: bool, retry_after_s: float | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.temporary = temporary
        self.retry_after_s = retry_after_s


class FetchCancelled(Exception):
    """The fetch was cut from another thread: the poll is stopping."""
