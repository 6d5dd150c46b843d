"""`SnapshotTree`: a version's hierarchy, as `Repository.tree` returns it.

Groups, and arrays with their shape, data type, chunk shape, chunks stored and their bytes:
stored (chunk objects and inline chunks, as encoded) and virtual (chunks kept in files the
repository does not own). Read from the snapshot alone, however many chunks there are. Shown
as HTML in notebooks (`SnapshotTree._repr_html_`) and as an indented text tree elsewhere
(``str`` and ``repr``).

Virtual bytes are 0 until vrepo has virtual chunk references: each array's figure is the sum
of its manifests' ``virtual_bytes``, the field a manifest reference will carry then.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from vrepo.engine._html import _STYLE, _e, _table
from vrepo.engine.listing import NodeInfo, _info
from vrepo.format import NodeSnapshot, Snapshot

HTML_ROWS = 500  # nodes a notebook display shows before "... and N more"


def human_bytes(n: int) -> str:
    """A size in B, KiB, MiB, GiB or TiB."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def shape_text(dims: tuple[int, ...] | None) -> str:
    """A shape as Python writes a tuple: ``(a, b)``, ``(a,)``, ``()``; "" for none."""
    return "" if dims is None else str(tuple(dims))


@dataclass(frozen=True)
class TreeNode(NodeInfo):
    """A group (with its `children`, sorted by name) or an array of a snapshot: the fields
    of a `NodeInfo` (``shape``, ``dtype``, ``chunk_shape``, ``chunk_count``,
    ``stored_bytes``, ``attributes``), and ``virtual_bytes``. A group's counts and bytes are
    the totals of everything below it.
    """

    virtual_bytes: int = 0
    children: tuple[TreeNode, ...] = field(default=())

    def walk(self) -> Iterator[tuple[int, TreeNode]]:
        """This node and every node below it, depth first, each with its depth (0 here)."""
        stack: list[tuple[int, TreeNode]] = [(0, self)]
        while stack:
            depth, node = stack.pop()
            yield depth, node
            stack.extend((depth + 1, child) for child in reversed(node.children))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: `NodeInfo.to_dict`, with ``virtual_bytes`` and nested ``children``."""
        return {
            **super().to_dict(),
            "virtual_bytes": self.virtual_bytes,
            "children": [child.to_dict() for child in self.children],
        }

    def describe(self) -> str:
        """An array's type, shape, chunks and bytes, on one line ("" for a group)."""
        if self.kind == "group":
            return ""
        virtual = f", {human_bytes(self.virtual_bytes)} virtual" if self.virtual_bytes else ""
        return (
            f"{self.dtype or ''} {shape_text(self.shape)}  chunks {shape_text(self.chunk_shape)}"
            f"  {self.chunk_count} stored, {human_bytes(self.stored_bytes)}{virtual}"
        )


@dataclass(frozen=True)
class SnapshotTree:
    """The hierarchy of one snapshot: `root` is its root group; `ref` the revision asked
    for (``"main"``, ``"v1~1"``, an id)."""

    snapshot_id: str
    ref: str
    root: TreeNode

    @property
    def stored_bytes(self) -> int:
        """The stored bytes of every array."""
        return self.root.stored_bytes

    @property
    def virtual_bytes(self) -> int:
        """The virtual bytes of every array (0 until vrepo has virtual chunk references)."""
        return self.root.virtual_bytes

    def nodes(self) -> list[TreeNode]:
        """Every group and array, depth first (a group before what it holds)."""
        return [node for _, node in self.root.walk()]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``snapshot_id``, ``ref``, ``stored_bytes``, ``virtual_bytes``, ``root``."""
        return {
            "snapshot_id": self.snapshot_id,
            "ref": self.ref,
            "stored_bytes": self.stored_bytes,
            "virtual_bytes": self.virtual_bytes,
            "root": self.root.to_dict(),
        }

    def _header(self) -> str:
        return (
            f"{self.ref} = snapshot {self.snapshot_id}: {human_bytes(self.stored_bytes)} "
            f"stored, {human_bytes(self.virtual_bytes)} virtual"
        )

    def __str__(self) -> str:
        drawn = [
            (prefix + node.name + ("/" if node.kind == "group" and node.path != "/" else ""), node)
            for prefix, node in _drawn(self.root)
        ]
        width = max(len(label) for label, _ in drawn)
        lines = [f"{label:<{width}}  {node.describe()}".rstrip() for label, node in drawn]
        return "\n".join([self._header(), *lines])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        rows = []
        for depth, node in self.root.walk():
            if len(rows) == HTML_ROWS:
                break
            name = _e(node.name) + ("/" if node.kind == "group" and node.path != "/" else "")
            label = f"<strong>{name}</strong>" if node.kind == "group" else f"<code>{name}</code>"
            array = node.kind == "array"
            rows.append(
                [
                    f'<span style="padding-left:{1.2 * depth:.1f}em">{label}</span>',
                    _e(node.dtype or ""),
                    _e(shape_text(node.shape)),
                    _e(shape_text(node.chunk_shape)),
                    _e(node.chunk_count) if array else "",
                    _e(human_bytes(node.stored_bytes)),
                    _e(human_bytes(node.virtual_bytes)),
                ]
            )
        more = len(self.nodes()) - len(rows)
        headers = ("node", "dtype", "shape", "chunk shape", "chunks", "stored", "virtual")
        tail = f"<div><em>… and {more} more</em></div>" if more > 0 else ""
        return (
            f'{_STYLE}<div class="vrepo-repr"><div><strong>vrepo.SnapshotTree</strong> '
            f"<code>{_e(self.ref)}</code> = <code>{_e(self.snapshot_id)}</code></div>"
            f"{_table(headers, rows)}{tail}</div>"
        )


def _drawn(root: TreeNode) -> Iterator[tuple[str, TreeNode]]:
    """Each node with the branch drawing that goes before its name."""
    yield "", root

    def below(node: TreeNode, indent: str) -> Iterator[tuple[str, TreeNode]]:
        for i, child in enumerate(node.children):
            last = i == len(node.children) - 1
            yield indent + ("└── " if last else "├── "), child
            yield from below(child, indent + ("    " if last else "│   "))

    yield from below(root, "")


def _virtual_bytes(node: NodeSnapshot) -> int:
    """Bytes of the array's virtual chunk references (none exist yet: 0)."""
    return sum(getattr(m, "virtual_bytes", 0) for m in node.manifests)


def snapshot_tree(snapshot: Snapshot, ref: str) -> SnapshotTree:
    """The hierarchy of ``snapshot`` (asked for as ``ref``), groups with their totals."""
    arrays: dict[str, TreeNode] = {}
    groups: dict[str, list[str]] = {"/": []}  # group path -> child paths
    attributes: dict[str, dict[str, Any] | None] = {}  # of the groups
    for node in snapshot.nodes:
        info = _info(node)
        if node.kind == "group":
            groups.setdefault(node.path, [])
            attributes[node.path] = info.attributes
        else:
            arrays[node.path] = TreeNode(**vars(info), virtual_bytes=_virtual_bytes(node))
    for path in [*groups, *arrays]:  # every node's parents, implicit ones too
        while path != "/":
            parent = path.rsplit("/", 1)[0] or "/"
            children = groups.setdefault(parent, [])
            if path not in children:
                children.append(path)
            path = parent

    def build(path: str) -> TreeNode:
        if path in arrays:
            return arrays[path]
        children = tuple(build(p) for p in sorted(groups[path]))
        return TreeNode(
            path,
            "group",
            chunk_count=sum(c.chunk_count for c in children),
            stored_bytes=sum(c.stored_bytes for c in children),
            attributes=attributes.get(path),
            virtual_bytes=sum(c.virtual_bytes for c in children),
            children=children,
        )

    return SnapshotTree(snapshot.id, ref, build("/"))


__all__ = ["SnapshotTree", "TreeNode", "snapshot_tree"]
