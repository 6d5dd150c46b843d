"""Transactions: a ``with`` block whose writes become one commit, or nothing at all.

``with repo.transaction("main", message="...") as store:`` yields the zarr store of a new
writable session on the branch. A clean exit commits (rebasing onto commits made meanwhile,
or raising `ConflictError`, as `Session.commit` does); an exception discards every change and
propagates unchanged. The commit is atomic, so a block is never published in part.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

from vrepo.engine.authors import as_author
from vrepo.engine.commit_rules import validated_metadata
from vrepo.engine.conflicts import Solver
from vrepo.engine.rebase import check_solver
from vrepo.errors import InvalidArgumentError
from vrepo.format import Author

if TYPE_CHECKING:
    from zarr.abc.store import Store

    from vrepo.engine.session import Session


class Transaction:
    """One atomic commit made by a ``with`` block; open with `Repository.transaction`.

    ``as`` binds the session's zarr store. Keep the transaction itself to learn what the
    block committed::

        tx = repo.transaction("main", message="load 1990")
        with tx as store:
            ds.to_zarr(store, zarr_format=3, consolidated=False)
        tx.snapshot_id  # the new snapshot, or None if the block changed nothing

    (``store.session.snapshot_id`` is the same id after the block.) A block that changes
    nothing commits nothing, unless ``allow_empty``.
    """

    def __init__(
        self,
        session: Session,
        message: str,
        metadata: dict[str, Any] | None,
        *,
        author: Author | str | None,
        rebase_with: Solver,
        allow_empty: bool,
    ) -> None:
        if not isinstance(message, str):
            raise InvalidArgumentError(
                f"transaction message must be a str, not {type(message).__name__}"
            )
        check_solver(rebase_with)
        self._session = session
        self._message = message
        self._metadata = validated_metadata(metadata)  # refused now, not after the writes
        self._author = None if author is None else as_author(author)
        self._rebase_with: Solver = rebase_with
        self._allow_empty = allow_empty
        self._state = "new"  # new -> open -> committed | unchanged | discarded | failed
        self._snapshot_id: str | None = None

    @property
    def session(self) -> Session:
        """The writable session the block writes through."""
        return self._session

    @property
    def store(self) -> Store:
        """The session's zarr store (what ``with ... as store`` binds)."""
        return self._session.store

    @property
    def snapshot_id(self) -> str | None:
        """The snapshot the block committed; None before the end, when it changed nothing,
        or when it raised."""
        return self._snapshot_id

    @property
    def committed(self) -> bool:
        """Whether the block's changes were committed."""
        return self._state == "committed"

    def __repr__(self) -> str:
        branch = self._session.branch
        return f"<vrepo.Transaction on branch {branch!r}: {self._state}>"

    def __enter__(self) -> Store:
        if self._state != "new":
            raise InvalidArgumentError(
                "a transaction runs one with-block; call repo.transaction(...) again for another"
            )
        self._state = "open"
        return self._session.store

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._state = "discarded"
            self._session.discard_changes()  # the block's chunks become garbage, collected later
            return  # the exception propagates as it was
        if not self._session.has_uncommitted_changes and not self._allow_empty:
            self._state = "unchanged"
            return
        self._state = "failed"  # until the commit returns: ConflictError etc. propagate
        self._snapshot_id = self._session.commit(
            self._message,
            self._metadata,
            allow_empty=self._allow_empty,
            rebase_with=self._rebase_with,
            author=self._author,
        )
        self._state = "committed"
