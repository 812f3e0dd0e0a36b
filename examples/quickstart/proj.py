"""The quickstart project: a Celery app whose periodic jobs are run by celery-orchestra.

Everything is embedded: the broker is a folder (kombu's ``filesystem://`` transport) and the
store is an SQLite file, both under ``var/`` beside this file, so no server is needed.
"""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery
from celery.schedules import crontab

from celery_orchestra import timing

HERE = Path(__file__).resolve().parent
VAR = Path(os.environ.get("QUICKSTART_VAR", HERE / "var"))
BROKER = VAR / "broker"
CONTROL = VAR / "control"
for folder in (BROKER, CONTROL):
    folder.mkdir(parents=True, exist_ok=True)

app = Celery("proj")
app.conf.update(
    # kombu warns "No hostname was supplied" for a bare filesystem://; the folders below are what counts.
    broker_url="filesystem://localhost//",
    broker_transport_options={
        "data_folder_in": str(BROKER),
        "data_folder_out": str(BROKER),
        "control_folder": str(CONTROL),
        "store_processed": False,
    },
    broker_connection_retry_on_startup=True,
    timezone="Europe/Berlin",
    beat_scheduler="celery_orchestra.Scheduler",
    orchestra_database_url=f"sqlite:///{VAR / 'orchestra.db'}",
    orchestra_schedule_files=[str(HERE / "schedule.yaml")],
    beat_schedule={
        # A timing string, straight in Celery's own setting.
        "heartbeat": {
            "task": "proj.heartbeat",
            "schedule": "every 2 seconds",
            "tags": ["demo", "fast"],
        },
        # A Timing object with its own zone.
        "tokyo-lunch": {
            "task": "proj.say",
            "schedule": timing("every day at 12:00", tz="Asia/Tokyo"),
            "args": ("いただきます",),
        },
        # Celery's own crontab works too.
        "every-minute-cron": {
            "task": "proj.say",
            "schedule": crontab(minute="*"),
            "args": ("a crontab minute went by",),
        },
        "hello-once": {
            "task": "proj.say",
            "schedule": "once in 5 seconds",
            "args": ("hello, once",),
        },
    },
)


@app.task
def heartbeat() -> str:
    return "beat"


@app.task
def say(text: str) -> str:
    print(f"say: {text}", flush=True)
    return text


@app.task
def long_task() -> int:
    return sum(range(1000))
