"""Transaction logs: what one commit changed, for conflict detection and diffs."""

from __future__ import annotations

import msgspec
import numpy as np

from vrepo.format.envelope import FileType, StructFile

_MAX_COORD = 2**32 - 1


class ArrayChunkChanges(msgspec.Struct, frozen=True):
    """The chunk coordinates of one array that a commit wrote or deleted.

    ``coords`` is a packed little-endian uint32 array of shape (count, ndim), row-major,
    sorted and without duplicates when built with `from_coords`. ``count`` is stored
    explicitly because a 0-d array (ndim 0) has one chunk with the empty coordinate.
    """

    path: str
    ndim: int
    count: int
    coords: bytes

    def __post_init__(self) -> None:
        if self.ndim < 0 or self.count < 0 or len(self.coords) != 4 * self.ndim * self.count:
            raise ValueError(
                f"chunk changes of {self.path!r}: {len(self.coords)} coordinate bytes do not "
                f"fit count {self.count} x ndim {self.ndim} x 4"
            )
        if self.ndim == 0 and self.count > 1:
            raise ValueError(f"a 0-d array has one chunk, {self.path!r} lists {self.count}")

    @classmethod
    def from_coords(cls, path: str, coords: np.ndarray) -> ArrayChunkChanges:
        """Pack an integer array of shape (n, ndim); duplicates are dropped, rows sorted."""
        c = np.asarray(coords)
        if c.ndim != 2 or (c.size and not np.issubdtype(c.dtype, np.integer)):
            raise ValueError(f"coords must be an integer array of shape (n, ndim), got {c.shape}")
        ndim = c.shape[1]
        if ndim == 0:
            return cls(path, 0, min(c.shape[0], 1), b"")
        if c.size and (c.min() < 0 or c.max() > _MAX_COORD):
            raise ValueError("chunk coordinates must be between 0 and 2**32 - 1")
        c = c.astype("<u4")[np.lexsort(c.T[::-1])]  # rows in order, first column major
        distinct = np.ones(len(c), bool)
        distinct[1:] = (c[1:] != c[:-1]).any(axis=1)
        c = c[distinct]
        return cls(path, ndim, c.shape[0], c.tobytes())

    def coords_array(self) -> np.ndarray:
        """The coordinates as a read-only uint32 array of shape (count, ndim)."""
        return np.frombuffer(self.coords, dtype="<u4").reshape(self.count, self.ndim)


class TransactionLog(msgspec.Struct, frozen=True):
    """What the commit of `snapshot_id` changed: nodes, chunks and loose (non-zarr) keys."""

    snapshot_id: str
    new_groups: tuple[str, ...] = ()
    new_arrays: tuple[str, ...] = ()
    updated_metadata: tuple[str, ...] = ()
    deleted_nodes: tuple[str, ...] = ()
    chunks: tuple[ArrayChunkChanges, ...] = ()
    loose_keys: tuple[str, ...] = ()


_file = StructFile(FileType.TRANSACTION_LOG, TransactionLog)


def encode_transaction_log(t: TransactionLog) -> bytes:
    """Encode a transaction log as a binary vrepo file."""
    return _file.encode(t)


def decode_transaction_log(data: bytes | bytearray | memoryview, *, what: str) -> TransactionLog:
    """Decode and verify a transaction log file; `FormatError` if it is corrupt."""
    return _file.decode(data, what=what)


def union_of_logs(
    first: TransactionLog, second: TransactionLog, snapshot_id: str
) -> TransactionLog:
    """One log covering both: for a snapshot that replaces ``first``'s (an amended commit).

    Every path and chunk either log names stays named, so conflict detection against the
    combined log is at least as strict as against the two separately.
    """

    def paths(field: str) -> tuple[str, ...]:
        return tuple(sorted(set(getattr(first, field)) | set(getattr(second, field))))

    coords: dict[str, list[np.ndarray]] = {}
    for changes in (*first.chunks, *second.chunks):
        coords.setdefault(changes.path, []).append(changes.coords_array())
    chunks = tuple(
        ArrayChunkChanges.from_coords(path, np.concatenate(parts))
        for path, parts in sorted(coords.items())
    )
    return TransactionLog(
        snapshot_id=snapshot_id,
        new_groups=paths("new_groups"),
        new_arrays=paths("new_arrays"),
        updated_metadata=paths("updated_metadata"),
        deleted_nodes=paths("deleted_nodes"),
        chunks=chunks,
        loose_keys=paths("loose_keys"),
    )
