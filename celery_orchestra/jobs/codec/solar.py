"""``{"type": "solar", "event": "sunset", "lat": 48.85, "lon": 2.35}``: a ``celery.schedules.solar``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from celery.exceptions import ImproperlyConfigured
from celery.schedules import BaseSchedule, solar

from ...errors import ScheduleDataError
from ._common import CodecDefaults, ScheduleContext

__all__ = ["SolarCodec"]


class SolarCodec(CodecDefaults):
    tag = "solar"
    fields: Final[Mapping[str, tuple[type, ...]]] = {"event": (str,), "lat": (int, float), "lon": (int, float)}

    def encode(self, value: object, *, relative: bool) -> dict[str, Any] | None:
        if not isinstance(value, solar):
            return None
        return {"type": self.tag, "event": str(value.event), "lat": float(value.lat), "lon": float(value.lon)}

    def decode(self, data: Mapping[str, Any], context: ScheduleContext) -> BaseSchedule:
        try:
            return solar(data["event"], data["lat"], data["lon"], nowfun=context.nowfun, app=context.app)
        except (ImproperlyConfigured, ImportError) as exc:  # Celery < 5.5 lets the ImportError through
            raise ScheduleDataError(
                "solar schedules need the 'ephem' package; install it with: pip install 'celery-orchestra[solar]'"
            ) from exc
        except ValueError as exc:
            raise ScheduleDataError(f"invalid solar schedule: {exc}") from exc

    def describe(self, data: Mapping[str, Any]) -> str:
        return f"solar {data['event']} at {data['lat']:g}, {data['lon']:g}"
