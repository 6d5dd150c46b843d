"""Keeping a repository small: snapshot expiry, garbage collection, disk usage.

`Repository` inherits these methods; they live here so the repository's own module stays
about refs, sessions and history.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from vrepo._progress import steps
from vrepo._sync import run_sync
from vrepo.engine.refs import now_us
from vrepo.engine.snapshot_info import to_us
from vrepo.errors import InvalidArgumentError

if TYPE_CHECKING:  # the modules themselves load when first used: vrepo log needs none
    from vrepo.engine.gc import GcReport
    from vrepo.engine.objects import ObjectIO
    from vrepo.engine.usage import Usage
    from vrepo.format import RepoInfo


DEFAULT_GRACE = dt.timedelta(days=7)
TIMED_IDS_SINCE = 3  # repositories created at this format version or later use timed ids


def _grace_us(older_than: dt.timedelta | dt.datetime) -> int:
    """A grace period in µs: an age, or the time it ended."""
    if isinstance(older_than, dt.timedelta) and older_than >= dt.timedelta(0):
        return int(older_than / dt.timedelta(microseconds=1))
    grace_us = now_us() - time_or_age_us(older_than, "older_than")
    if grace_us < 0:
        raise InvalidArgumentError(f"older_than must not be in the future, got {older_than}")
    return grace_us


def time_or_age_us(when: dt.datetime | dt.timedelta, name: str) -> int:
    """A point in time as µs since the epoch: ``when`` itself, or that long ago."""
    if isinstance(when, dt.timedelta):
        if when < dt.timedelta(0):
            raise InvalidArgumentError(f"{name} must not be a negative age, got {when}")
        return now_us() - int(when / dt.timedelta(microseconds=1))
    return to_us(when, name)


class RepositoryMaintenance:
    """Expiry, garbage collection and disk usage, for `Repository`."""

    _objects: ObjectIO
    _info: RepoInfo

    if TYPE_CHECKING:

        def resolve(self, ref: str) -> str: ...

    def expire_snapshots(
        self,
        older_than: dt.datetime | dt.timedelta,
        *,
        branch: str | None = None,
        keep_tags: bool = True,
        progress: bool | None = None,
    ) -> list[str]:
        """Cut snapshots written before ``older_than`` (a time, or an age such as
        ``timedelta(days=90)``) out of the branches' histories; return the ids of those no
        branch or tag reaches any more, newest first.

        Branch heads, tags and the first snapshot are never expired; with ``keep_tags``
        (default) tagged snapshots also keep their place in the histories. With ``branch``,
        only that branch's history is cut, and snapshots another branch's history holds stay.
        Writers may commit meanwhile. Expired snapshots stay readable by id until
        `garbage_collect` deletes them. ``progress`` shows the phase on a status line (by
        default when standard error is a terminal or in Jupyter).
        """
        from vrepo.engine.expiry import expire_snapshots

        older_than_us = time_or_age_us(older_than, "older_than")
        with steps("expiring snapshots", progress=progress) as note:
            return run_sync(
                expire_snapshots(
                    self._objects, older_than_us, branch=branch, keep_tags=keep_tags, note=note
                )
            )

    def garbage_collect(
        self,
        *,
        older_than: dt.timedelta | dt.datetime = DEFAULT_GRACE,
        dry_run: bool = False,
        progress: bool | None = None,
    ) -> GcReport:
        """Delete what no branch, tag or retained snapshot reaches and is older than the grace
        period ``older_than`` (an age; or a time, the grace period ending then); return how
        many objects of each kind and how many bytes were freed (``dry_run``: would be).

        Whatever is being written now (sessions, forks, jobs that have not committed) is
        younger than the grace period and kept: make it longer than any write takes (a week
        by default). Commits and other writers may work meanwhile. The first collection
        lists everything; later ones look only at what changed since. ``progress`` shows the
        phase on a status line (by default when standard error is a terminal or in Jupyter).
        """
        from vrepo.engine.gc import collect

        grace_us = _grace_us(older_than)
        timed = self._info.format_version >= TIMED_IDS_SINCE
        title = "collecting garbage" + (" (dry run)" if dry_run else "")
        with steps(title, progress=progress) as note:
            return run_sync(
                collect(self._objects, grace_us, dry_run=dry_run, timed_ids=timed, note=note)
            )

    def disk_usage(
        self, ref: str = "main", *, older_than: dt.timedelta | dt.datetime = DEFAULT_GRACE
    ) -> Usage:
        """The stored bytes of a revision's arrays, and how many of them no other snapshot
        in a history shares; with what `garbage_collect` (same ``older_than``) would free."""
        snapshot_id = self.resolve(ref)
        grace_us = _grace_us(older_than)
        timed = self._info.format_version >= TIMED_IDS_SINCE
        from vrepo.engine.usage import usage

        return run_sync(usage(self._objects, snapshot_id, grace_us, timed_ids=timed))
