"""Where the source lands in the repository: the group path, what may not be there already,
and the metadata written before any chunk (a chunk key means a chunk only below an array).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from vrepo.engine.listing import NodeInfo
from vrepo.errors import InvalidArgumentError
from vrepo.importing._v2 import ZARR_JSON

_EMPTY_GROUP = json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}).encode()


def group_path(group: str | None) -> str:
    """``group`` as a node path ("/" for the root, "/a/b" for "a/b" or "/a/b/")."""
    if group is None:
        return "/"
    if not isinstance(group, str):
        raise InvalidArgumentError(f"group must be a str such as 'a/b', not {type(group).__name__}")
    parts = group.strip("/").split("/") if group.strip("/") else []
    bad = [p for p in parts if p in ("", ".", "..") or "\\" in p or not p.isprintable()]
    if bad:
        raise InvalidArgumentError(
            f"invalid group {group!r}: a group is a '/'-separated path such as 'a/b', with no "
            "empty, '.' or '..' parts"
        )
    return "/" + "/".join(parts)


def key_prefix(path: str) -> str:
    """The store key prefix of a node path: '' for the root, 'a/b/' for /a/b."""
    return "" if path == "/" else path[1:] + "/"


def check_free(path: str, existing: list[NodeInfo], branch: str) -> None:
    """Refuse to import where the branch has data, so nothing is overwritten: a node below
    ``path``, an array or a group with attributes at it, or an array above it. An empty
    group at ``path`` (no members, no attributes) is taken over."""
    below = "" if path == "/" else path
    taken = [n.path for n in existing if n.path.startswith(below + "/") and n.path != path]
    taken += [n.path for n in existing if n.path == path and (n.kind == "array" or n.attributes)]
    if taken:
        shown = ", ".join(sorted(taken)[:5])
        more = f" and {len(taken) - 5} more" if len(taken) > 5 else ""
        raise InvalidArgumentError.advised(
            f"branch {branch!r} already has data at {path} ({shown}{more}), which an import "
            "never overwrites",
            "import into a new group (group='...') or another branch (branch='...')",
            "import-elsewhere",
        )
    arrays = [n.path for n in existing if n.kind == "array" and path.startswith(n.path + "/")]
    if arrays:
        raise InvalidArgumentError(
            f"cannot import into {path}: {arrays[0]} is an array; pick a group path"
        )


def placed(documents: Mapping[str, bytes], path: str, existing: list[NodeInfo]) -> dict[str, bytes]:
    """The ``zarr.json`` documents to write, by repository key: the source's below ``path``
    (groups without consolidated metadata, which the next commit would make stale) and empty
    groups for the parents of ``path`` that the branch lacks."""
    prefix = key_prefix(path)
    out = {prefix + key: _without_consolidated(data) for key, data in documents.items()}
    have = {n.path for n in existing}
    parts = path.strip("/").split("/") if path != "/" else []
    for i in range(len(parts)):
        parent = "/" + "/".join(parts[:i])
        if parent not in have:
            out[key_prefix(parent) + ZARR_JSON] = _EMPTY_GROUP
    return out


def _without_consolidated(data: bytes) -> bytes:
    doc = json.loads(data)
    # zarr 3.1.3's migration writes the key as null; later releases leave it out
    if doc.get("node_type") != "group" or "consolidated_metadata" not in doc:
        return data
    doc.pop("consolidated_metadata")
    return json.dumps(doc).encode()
