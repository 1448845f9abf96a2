"""Data issues found while reading and checking the forecast inputs.

Nothing is dropped silently: every row or region that is excluded, repaired or
left without a forecast becomes an :class:`Issue` in the job's report. With
``strict=True`` the issues are raised together as one :class:`~cluster.errors.DataError`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

from cluster.errors import DataError

__all__ = ["Issue", "IssueLog"]

_MAX_LISTED = 12
"""How many ids a message lists before it says "... and N more" (the full list is in ``items``)."""


def format_ids(items: Sequence[object]) -> str:
    """A short, readable list of ids.

    >>> format_ids(["a", "b"])
    "'a', 'b'"
    >>> format_ids(list(range(14)))
    '0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 ... and 2 more'
    """
    shown = ", ".join(repr(i) for i in items[:_MAX_LISTED])
    if len(items) > _MAX_LISTED:
        shown += f" ... and {len(items) - _MAX_LISTED} more"
    return shown


@dataclass(frozen=True)
class Issue:
    """One problem with the inputs, what was done about it, and the rows or regions concerned."""

    code: str
    """A stable identifier, e.g. ``yield_missing``, ``region_not_in_calendar``."""
    table: str
    """Which input: ``yields``, ``series``, ``calendar``, ``regions`` or ``as_of``."""
    message: str
    """What is wrong, which rows/regions, what was done with them."""
    items: tuple[str, ...] = field(default=())
    """Every affected row or region, e.g. ``"ES241/2003"`` or ``"NL11"``."""

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["items"] = list(self.items)
        return d


class IssueLog:
    """Collects issues; ``raise_if_strict`` turns them into one error when the config says strict."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def add(self, code: str, table: str, message: str, items: Iterable[object] = ()) -> Issue:
        issue = Issue(code=code, table=table, message=message, items=tuple(str(i) for i in items))
        self.issues.append(issue)
        return issue

    def extend(self, issues: Iterable[Issue]) -> None:
        self.issues.extend(issues)

    def raise_if_strict(self, strict: bool) -> None:
        """Raise :class:`DataError` listing every issue when ``strict`` is set and there is any."""
        if strict and self.issues:
            lines = "\n".join(f"- [{i.code}] {i.message}" for i in self.issues)
            raise DataError(
                f"the forecast inputs have {len(self.issues)} problem(s) and strict=True:\n{lines}\n"
                "Fix the tables, or set strict: false to exclude these rows/regions and go on "
                "(each one is then listed in the report)."
            )
