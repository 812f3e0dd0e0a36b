"""Wall-clock jump detection: an NTP step or a resumed VM must not stall beat or cause a burst.

Wall time is compared with monotonic time on every tick. When their difference moves by more than
:data:`CLOCK_JUMP_THRESHOLD` seconds, the scheduler re-evaluates every next fire instant.
"""

from __future__ import annotations

import logging

__all__ = ["CLOCK_JUMP_THRESHOLD", "ClockWatch"]

logger = logging.getLogger("celery_orchestra.scheduler")

#: A wall-clock jump larger than this (seconds, against monotonic time) re-evaluates the schedule.
CLOCK_JUMP_THRESHOLD = 5.0


class ClockWatch:
    """Remembers the last (wall, monotonic) reading and reports jumps between readings."""

    def __init__(self, threshold: float = CLOCK_JUMP_THRESHOLD) -> None:
        self.threshold = threshold
        self._last: tuple[float, float] | None = None

    def reset(self, wall: float, monotonic: float) -> None:
        """Take this reading as the reference, without comparing it to anything."""
        self._last = (wall, monotonic)

    def jump(self, wall: float, monotonic: float) -> float:
        """Seconds the wall clock jumped since the last reading (0.0 within the threshold)."""
        last, self._last = self._last, (wall, monotonic)
        if last is None:
            return 0.0
        jumped = (wall - last[0]) - (monotonic - last[1])
        return jumped if abs(jumped) > self.threshold else 0.0

    def jumped(self, wall: float, monotonic: float) -> bool:
        """Whether the wall clock jumped since the last reading; a jump is logged (everything is re-evaluated)."""
        jump = self.jump(wall, monotonic)
        if jump:
            direction = "forward" if jump > 0 else "backward"
            logger.warning(
                "celery-orchestra: the wall clock jumped %s by %.1f s; re-evaluating every job", direction, abs(jump)
            )
        return bool(jump)
