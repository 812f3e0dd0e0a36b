"""Timing expressions shared by tests and benchmarks: the predecessor's 23, and our extensions."""

from __future__ import annotations

#: Every example in the predecessor's README, in its order.
PREDECESSOR_EXPRESSIONS = (
    "every 00:00:01",
    "every 48:00:00",
    "every 31 minutes and 12 seconds",
    "every Monday at 03:15:00",
    "next Tuesday at 13:11:00",
    "once, Wednesday at 01:15:00",
    "once on Thursday, 00:31:41",
    "every day at 09:15:14",
    "every minute at 15 seconds",
    "every hour at 05:00",
    "every day on 9:03",
    "every day at 9:15",
    "every day at 13 hours",
    "once in 13:11:52",
    "11:23:00",
    "9:13",
    "2023-04-01 09:13",
    "2023-04-01 09:13:11",
    "next 23:00:00",
    "once in 5 hours 2 minutes and 15 seconds",
    "once in 1 hour and 10 minutes",
    "once in 2 minutes and 10 seconds",
    "once in 17 seconds",
)

#: The extensions the issue asked for, one of each.
EXTENSION_EXAMPLES = (
    "every 15 minutes",
    "every 2 days at 10:00",
    "every weekday at 08:00",
    "every Monday and Thursday at 9:00",
)
