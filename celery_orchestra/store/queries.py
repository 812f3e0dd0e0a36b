"""Reading jobs: all of them, one, the ones changed since a revision, the ones with given tags.

Change detection: readers poll :func:`current_revision` (one tiny query) and fetch only rows with
``revision > seen`` (an index), see :func:`changes_since`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from sqlalchemy import Text, cast, func, select
from sqlalchemy.engine import Connection

from .bulk_rows import read_job_records
from .database import Database
from .decoding import decode_json_text
from .records import JobRecord
from .sql import read_revision
from .tables import JOBS

__all__ = [
    "JobKey",
    "all_jobs",
    "changes_since",
    "count_jobs",
    "current_revision",
    "get_job",
    "job_keys",
    "jobs_named",
    "names_with_tags",
]


class JobKey(NamedTuple):
    """What a listing filters on before it needs a job's whole row: its name, owner and tags."""

    name: str
    owner: str
    tags: tuple[str, ...]


def all_jobs(db: Database, *, include_removed: bool = True) -> list[JobRecord]:
    """Every stored job, by name (a row that cannot be read: a broken record, see :class:`JobRecord`)."""
    where = None if include_removed else JOBS.c.removed.is_(False)
    return db.read("list the jobs", lambda connection: read_job_records(connection, where=where))


def count_jobs(db: Database) -> int:
    """How many jobs are stored, removed ones included."""
    query = select(func.count()).select_from(JOBS)
    return db.read("count the jobs", lambda connection: int(connection.execute(query).scalar_one()))


def job_keys(db: Database, *, include_removed: bool = True) -> list[JobKey]:
    """Every stored job's :class:`JobKey`, by name: three columns, where :func:`all_jobs` decodes
    every column of every row (a page of a large store filters on these, then reads its own rows)."""
    query = select(JOBS.c.name, JOBS.c.owner, cast(JOBS.c.tags, Text)).order_by(JOBS.c.name)
    if not include_removed:
        query = query.where(JOBS.c.removed.is_(False))

    def key(name: str, owner: str, text: str) -> JobKey:
        tags, broken = decode_json_text("tags", text)
        # Tags that cannot be read (a broken row) match no tag filter; the row itself says why.
        usable = broken is None and isinstance(tags, list) and all(isinstance(tag, str) for tag in tags)
        return JobKey(name, owner, tuple(tags) if usable else ())

    return db.read("list the jobs", lambda connection: [key(*row) for row in connection.execute(query)])


def jobs_named(db: Database, names: Sequence[str]) -> list[JobRecord]:
    """The stored jobs among ``names`` (at most a page of them: one ``IN`` list), by name."""
    if not names:
        return []
    wanted = sorted(set(names))
    return db.read("read jobs by name", lambda connection: read_job_records(connection, where=JOBS.c.name.in_(wanted)))


def get_job(db: Database, name: str) -> JobRecord | None:
    """The job called ``name``, or ``None`` (broken or not)."""

    def work(connection: Connection) -> JobRecord | None:
        records = read_job_records(connection, where=JOBS.c.name == name)
        return records[0] if records else None

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
        records = read_job_records(connection, where=JOBS.c.revision > revision, order_by=JOBS.c.revision)
        newest = max([counter, *(record.revision for record in records)])
        return newest, records

    return db.read("read changed jobs", work)


def names_with_tags(db: Database, tags: Iterable[str], *, any_tag: bool = True) -> list[str]:
    """Names of the (not removed) jobs carrying any of ``tags`` (or all of them), sorted."""
    wanted = set(tags)
    if not wanted:
        return []
    query = select(JOBS.c.name, cast(JOBS.c.tags, Text)).where(JOBS.c.removed.is_(False)).order_by(JOBS.c.name)

    def matches(text: str) -> bool:
        # Tags that cannot be read (a broken row) match nothing rather than failing every job's lookup.
        job_tags, _ = decode_json_text("tags", text)
        present = wanted.intersection(job_tags)
        return bool(present) if any_tag else present == wanted

    return db.read(
        "find jobs by tag",
        lambda connection: [name for name, text in connection.execute(query) if matches(text)],
    )
