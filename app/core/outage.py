"""The state of an outside system that may go away: logged once when it does, retried later."""

from __future__ import annotations

import logging
import time


class Outage:
    """Tracks one dependency's outages: one warning when it fails, one line when it is back,
    and a pause after each failure before it is tried again."""

    def __init__(
        self, logger: logging.Logger, down: str, up: str, *, retry_pause: float = 1.0
    ) -> None:
        self._logger = logger
        self._down_message = down
        self._up_message = up
        self._retry_pause = retry_pause
        self._retry_at = 0.0
        self.down = False

    @property
    def pausing(self) -> bool:
        """True while down and the pause since the last failure has not passed."""
        return self.down and time.monotonic() < self._retry_at

    def failed(self, exc: Exception) -> None:
        """Record a failure: start a pause, and warn if this begins an outage."""
        self._retry_at = time.monotonic() + self._retry_pause
        if not self.down:
            self.down = True
            self._logger.warning(self._down_message, extra={"error": str(exc)})

    def succeeded(self) -> None:
        """Record a success: the outage, if any, is over."""
        if self.down:
            self.down = False
            self._logger.info(self._up_message)
