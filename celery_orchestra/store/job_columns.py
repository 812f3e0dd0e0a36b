"""Many jobs' values held column by column: how start-up moves 100,000 jobs from the database
through reconcile to beat without building a record per job.

A :class:`~.records.JobRecord` per job is a 24-field tuple built in Python, and at start-up most of
them are never looked at: beat needs a handful of fields to queue a job, and a job's record only
once the job is due or inspected. A column, on the other hand, comes out of the database in one
transposition, is compared with another column in one list comparison (in C), and is reordered
with one ``itemgetter`` call. So the store reads and inserts jobs as :class:`JobColumns`,
reconcile compares them column by column, and beat takes the result as it is, each job's record
built when something asks for it.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final, overload

from .records import JOB_FIELDS, JobRecord

__all__ = ["JobColumns", "taken"]

_POSITION: Final = {name: index for index, name in enumerate(JOB_FIELDS)}
_POSITIONS: Final = range(len(JOB_FIELDS))


class JobColumns(Sequence[JobRecord]):
    """Jobs as one column of values per field of :data:`~.records.JOB_FIELDS`, in that order.

    Item ``i`` is job ``i``'s :class:`~.records.JobRecord`, built when asked for (each time: keep it
    if it is needed twice). Its values are taken as they are, so a table meant for records holds
    record values (``args`` and ``tags`` as tuples, JSON columns decoded). The store's own tables,
    read from or written to the database, hold the JSON columns as their JSON text instead; those
    are read column by column, never as records.

    Only jobs that could be read are held (a record's ``broken`` is not a column): a broken job is
    kept out, as its record alone (see :class:`~.records.JobRecord`).
    """

    __slots__ = ("_columns", "_length")

    def __init__(self, columns: Sequence[Sequence[Any]]) -> None:
        if len(columns) != len(JOB_FIELDS):
            raise ValueError(
                f"JobColumns takes {len(JOB_FIELDS)} columns ({', '.join(JOB_FIELDS)}), got {len(columns)}"
            )
        lengths = {len(column) for column in columns}
        if len(lengths) != 1:
            raise ValueError(f"the columns of a JobColumns differ in length: {sorted(lengths)}")
        self._columns: tuple[Sequence[Any], ...] = tuple(columns)
        self._length = lengths.pop()

    @classmethod
    def empty(cls) -> JobColumns:
        return cls([()] * len(JOB_FIELDS))

    @classmethod
    def of_rows(cls, rows: Iterable[Sequence[Any]]) -> JobColumns:
        """The jobs of rows holding their values in :data:`~.records.JOB_FIELDS` order (records
        too, which may not be broken)."""
        listed = list(rows)
        if not listed:
            return cls.empty()
        columns = list(zip(*listed, strict=True))
        # Records: their last field, broken, is no column.
        reasons = columns.pop() if len(columns) == len(JOB_FIELDS) + 1 else ()
        if any(reason is not None for reason in reasons):
            raise ValueError("a broken job's record cannot be held in JobColumns")
        return cls(columns)

    @classmethod
    def of(cls, records: Sequence[JobRecord]) -> JobColumns:
        """The columns of ``records`` (``records`` itself when it is a :class:`JobColumns` already)."""
        if isinstance(records, JobColumns):
            return records
        return cls.of_rows(records)

    @classmethod
    def joined(cls, tables: Sequence[JobColumns]) -> JobColumns:
        """The jobs of every table, one table after the other."""
        kept = [table for table in tables if len(table)]
        if len(kept) == 1:
            return kept[0]
        if not kept:
            return cls.empty()
        return cls(
            [list(itertools.chain.from_iterable(table._columns[position] for table in kept)) for position in _POSITIONS]
        )

    def column(self, name: str) -> Sequence[Any]:
        """Every job's value of the field ``name``, in job order."""
        return self._columns[_POSITION[name]]

    def value(self, name: str, index: int) -> Any:
        """Job ``index``'s value of the field ``name`` (without building its record)."""
        return self._columns[_POSITION[name]][index]

    def row(self, index: int) -> tuple[Any, ...]:
        """Job ``index``'s values in :data:`~.records.JOB_FIELDS` order."""
        return tuple(column[index] for column in self._columns)

    def rows(self) -> Iterator[tuple[Any, ...]]:
        """Every job's values in :data:`~.records.JOB_FIELDS` order."""
        return zip(*self._columns, strict=True)

    def taken(self, indices: Sequence[int]) -> JobColumns:
        """The jobs at ``indices``, in that order."""
        if _is_every_index(indices, self._length):
            return self
        return JobColumns([taken(column, indices) for column in self._columns])

    def sorted_by_name(self) -> JobColumns:
        names = self.column("name")
        return self.taken(sorted(range(self._length), key=names.__getitem__))

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> JobRecord: ...

    @overload
    def __getitem__(self, index: slice) -> JobColumns: ...

    def __getitem__(self, index: int | slice) -> JobRecord | JobColumns:
        if isinstance(index, slice):
            return self.taken(range(self._length)[index])
        if not -self._length <= index < self._length:
            raise IndexError(f"job index {index} out of range (0..{self._length - 1})")
        values = [column[index] for column in self._columns]
        values.append(None)  # broken: every job held here could be read
        return JobRecord._make(values)

    def __repr__(self) -> str:
        return f"<JobColumns: {self._length} jobs>"


def taken(column: Sequence[Any], indices: Sequence[int]) -> Sequence[Any]:
    """The values of ``column`` at ``indices``, in that order (``column`` itself for all of them in order)."""
    if _is_every_index(indices, len(column)):
        return column
    if not indices:
        return ()
    if len(indices) == 1:
        return (column[indices[0]],)
    return operator.itemgetter(*indices)(column)  # type: ignore[no-any-return]


def _is_every_index(indices: Sequence[int], length: int) -> bool:
    """Whether ``indices`` is 0, 1, ..., ``length - 1`` (cheap for a ``range``)."""
    if len(indices) != length:
        return False
    if isinstance(indices, range):
        return indices.start == 0 and indices.step == 1
    return length == 0 or (indices[0] == 0 and indices[-1] == length - 1 and list(indices) == list(range(length)))
