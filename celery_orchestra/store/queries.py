"""Reading jobs: all of them, one, the ones changed since a revision, the ones with given tags.

Change detection: readers poll :func:`current_revision` (one tiny query) and fetch only rows with
``revision > seen`` (an index), see :func:`changes_since`.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.engine import Connection

from .database import Database
from .records import JobRecord
from .sql import read_revision
from .tables import JOBS

__all__ = ["all_jobs", "changes_since", "current_revision", "get_job", "names_with_tags"]


def all_jobs(db: Database, *, include_removed: bool = True) -> list[JobRecord]:
    """Every stored job, by name."""
    query = select(JOBS).order_by(JOBS.c.name)
    if not include_removed:
        query = query.where(JOBS.c.removed.is_(False))
    return db.read(
        "list the jobs", lambda connection: [JobRecord.from_row(row._mapping) for row in connection.execute(query)]
    )


def get_job(db: Database, name: str) -> JobRecord | None:
    """The job called ``name``, or ``None``."""
    query = select(JOBS).where(JOBS.c.name == name)

    def work(connection: Connection) -> JobRecord | None:
        row = connection.execute(query).first()
        return None if row is None else JobRecord.from_row(row._mapping)

    return db.read(f"read job {name!r}", work)


def current_revision(db: Database) -> int:
    """The global change counter: it grows whenever anything in ``orchestra_jobs`` is written."""
    return db.read("read the change counter", lambda connection: read_revision(connection, db.safe_url))


def changes_since(db: Database, revision: int) -> tuple[int, list[JobRecord]]:
    """Jobs written after ``revision``, and the revision to pass next time.

    Reads only the rows with ``revision > given`` (an indexed range). Removed jobs are included
    (with ``removed=True``) so that a reader can drop them. The counter is read *before* the
    rows, so a write committing in between is seen now or next time, never lost; a row may be
    returned twice, never missed.
    """

    def work(connection: Connection) -> tuple[int, list[JobRecord]]:
        counter = read_revision(connection, db.safe_url)
        rows = connection.execute(select(JOBS).where(JOBS.c.revision > revision).order_by(JOBS.c.revision))
        records = [JobRecord.from_row(row._mapping) for row in rows]
        newest = max([counter, *(record.revision for record in records)])
        return newest, records

    return db.read("read changed jobs", work)


def names_with_tags(db: Database, tags: Iterable[str], *, any_tag: bool = True) -> list[str]:
    """Names of the (not removed) jobs carrying any of ``tags`` (or all of them), sorted."""
    wanted = set(tags)
    if not wanted:
        return []
    query = select(JOBS.c.name, JOBS.c.tags).where(JOBS.c.removed.is_(False)).order_by(JOBS.c.name)

    def matches(job_tags: Iterable[str]) -> bool:
        present = wanted.intersection(job_tags)
        return bool(present) if any_tag else present == wanted

    return db.read(
        "find jobs by tag",
        lambda connection: [row.name for row in connection.execute(query) if matches(row.tags)],
    )
