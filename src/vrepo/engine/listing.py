"""What a snapshot holds, node by node: kind, shape, data type, chunking and stored bytes.

Everything comes from the snapshot alone (zarr metadata plus each manifest's chunk count and
byte total), so listing a repository reads one file however many chunks it has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from vrepo.format import NodeSnapshot, Snapshot


@dataclass(frozen=True)
class NodeInfo:
    """One group or array of a snapshot.

    For arrays: ``shape``, ``dtype`` (the Zarr v3 data type name), ``chunk_shape``,
    ``chunk_count`` (chunks stored, not the size of the grid) and ``stored_bytes`` (the
    encoded size of those chunks, inline ones included). Groups have None and zeros.
    """

    path: str
    kind: Literal["group", "array"]
    shape: tuple[int, ...] | None = None
    dtype: str | None = None
    chunk_shape: tuple[int, ...] | None = None
    chunk_count: int = 0
    stored_bytes: int = 0
    attributes: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        """The last component of the path ("/" for the root)."""
        return self.path.rsplit("/", 1)[-1] or "/"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: these field names, tuples as lists."""
        return {
            "path": self.path,
            "kind": self.kind,
            "shape": list(self.shape) if self.shape is not None else None,
            "dtype": self.dtype,
            "chunk_shape": list(self.chunk_shape) if self.chunk_shape is not None else None,
            "chunk_count": self.chunk_count,
            "stored_bytes": self.stored_bytes,
            "attributes": self.attributes or {},
        }


def list_nodes(snapshot: Snapshot) -> list[NodeInfo]:
    """Every group and array of ``snapshot``, sorted by path."""
    return [_info(node) for node in snapshot.nodes]


def _info(node: NodeSnapshot) -> NodeInfo:
    doc = msgspec.json.decode(node.zarr_json)
    attributes = doc.get("attributes") or {}
    if node.kind == "group":
        return NodeInfo(node.path, "group", attributes=attributes)
    grid = doc.get("chunk_grid", {}).get("configuration", {})
    return NodeInfo(
        path=node.path,
        kind="array",
        shape=tuple(doc["shape"]),
        dtype=_dtype_name(doc.get("data_type")),
        chunk_shape=tuple(grid["chunk_shape"]) if "chunk_shape" in grid else None,
        chunk_count=sum(m.count for m in node.manifests),
        stored_bytes=sum(m.stored_bytes for m in node.manifests),
        attributes=attributes,
    )


def _dtype_name(data_type: Any) -> str:
    """``"float32"``, or for a parametrised type its name and parameters."""
    if isinstance(data_type, str):
        return data_type
    if isinstance(data_type, dict) and "name" in data_type:
        config = data_type.get("configuration") or {}
        params = ", ".join(f"{k}={v}" for k, v in config.items())
        return f"{data_type['name']}[{params}]" if params else str(data_type["name"])
    return str(data_type)


__all__ = ["NodeInfo", "list_nodes"]
