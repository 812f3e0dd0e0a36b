"""``{"type": "timing", "expression": "every day at 09:15:00"}``: a natural-language timing.

Stored in its normalised spelling, so that a reformatted expression is not a change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from celery.schedules import BaseSchedule

from ...timing.parser import parse_expression
from ...timing.schedule import Timing, timing
from ._common import CodecDefaults, ScheduleContext

__all__ = ["TimingCodec"]


class TimingCodec(CodecDefaults):
    tag = "timing"
    fields: Final[Mapping[str, tuple[type, ...]]] = {"expression": (str,)}

    def encode(self, value: object, *, relative: bool) -> dict[str, Any] | None:
        if isinstance(value, str):
            return {"type": self.tag, "expression": str(parse_expression(value))}
        if isinstance(value, Timing):
            return {"type": self.tag, "expression": value.expression}
        return None

    def decode(self, data: Mapping[str, Any], context: ScheduleContext) -> BaseSchedule:
        return timing(data["expression"], context.tz, anchor=context.anchor, app=context.app, nowfun=context.nowfun)

    def kind(self, data: Mapping[str, Any]) -> str:
        return parse_expression(data["expression"]).kind

    def describe(self, data: Mapping[str, Any]) -> str:
        return str(data["expression"])
