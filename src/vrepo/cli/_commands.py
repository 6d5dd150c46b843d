"""The ``vrepo`` command line: inspect and manage repositories from a shell.

Read commands take a reference, ``REPOSITORY[@REVISION]`` (see `vrepo.engine.reference`), and print
rich tables and trees on a terminal, plain aligned text when piped, and JSON with ``--json``.
Errors print one line on stderr and exit with status 1 (2 for usage errors). docs/cli.md is
the reference. Rich is imported only when output goes to a terminal.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import itertools
import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from vrepo._sync import run_sync
from vrepo.cli._graph import GraphNode, draw, topo_order
from vrepo.engine.reference import DEFAULT_BRANCH, parse_reference
from vrepo.engine.refs import RefHead, read_head
from vrepo.engine.repository import Repository, SnapshotInfo, split_reference
from vrepo.errors import InvalidArgumentError, RepositoryNotFoundError, VRepoError
from vrepo.storage import as_storage

if TYPE_CHECKING:
    from rich.console import Console

    from vrepo.engine.diff import SnapshotDiff
    from vrepo.engine.listing import NodeInfo

EXIT_ERROR = 1  # a vrepo error: bad reference, missing repository, invalid name...
EXIT_USAGE = 2  # bad options or arguments (typer's own usage errors)

# s3_storage keywords that --storage-option may set, and how to read their values
_STORAGE_OPTIONS = {"endpoint_url": str, "region": str, "anonymous": bool}
_storage_options: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "vrepo_cli_storage_options", default=None
)


class _App(TyperGroup):
    """Turns vrepo errors into one line on stderr and exit status 1, with no traceback."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except VRepoError as exc:
            _fail(str(exc))
        except OSError as exc:
            if isinstance(exc, BrokenPipeError):
                raise
            _fail(f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}")


class _ListByDefault(TyperGroup):
    """``vrepo branch REPO`` means ``vrepo branch list REPO`` (likewise for tags)."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["list", *args]
        return super().parse_args(ctx, args)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_ERROR)


app = typer.Typer(
    cls=_App,
    name="vrepo",
    help="Version control for Zarr data: inspect history, branches, tags and snapshots.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
branch_app = typer.Typer(
    cls=_ListByDefault, help="List, create, delete and reset branches.", no_args_is_help=True
)
tag_app = typer.Typer(
    cls=_ListByDefault, help="List, create and delete tags.", no_args_is_help=True
)
config_app = typer.Typer(help="Show and change vrepo's configuration.", no_args_is_help=True)
app.add_typer(branch_app, name="branch")
app.add_typer(tag_app, name="tag")
app.add_typer(config_app, name="config")

RefArg = Annotated[
    str,
    typer.Argument(
        metavar="REF",
        help="REPOSITORY[@REVISION]: a path or URL, then a branch, tag or snapshot id, "
        "optionally ~N (default: branch main).",
    ),
]
RepoArg = Annotated[str, typer.Argument(metavar="REPO", help="Repository path or URL.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (see docs/cli.md).")]


@app.callback()
def _global(
    ctx: typer.Context,
    config: Annotated[
        list[str] | None,
        typer.Option(
            "--config",
            "-c",
            metavar="KEY=VALUE",
            help="Set a configuration key for this command only (repeatable).",
        ),
    ] = None,
    storage_option: Annotated[
        list[str] | None,
        typer.Option(
            "--storage-option",
            "-s",
            metavar="KEY=VALUE",
            help="For s3:// references: endpoint_url, region or anonymous (repeatable).",
        ),
    ] = None,
) -> None:
    """vrepo: snapshots, branches and tags for Zarr data, from the command line."""
    if storage_option:
        options = {}
        for key, value in _pairs(storage_option, "--storage-option").items():
            kind = _STORAGE_OPTIONS.get(key)
            if kind is None:
                raise typer.BadParameter(
                    f"unknown storage option {key!r}; use {', '.join(_STORAGE_OPTIONS)}",
                    param_hint="--storage-option",
                )
            options[key] = _flag(value) if kind is bool else value
        token = _storage_options.set(options)
        ctx.call_on_close(lambda: _storage_options.reset(token))
    if config:
        from vrepo import config as settings

        applied = settings.set(_pairs(config, "--config"))
        ctx.call_on_close(lambda: applied.__exit__(None, None, None))


def _flag(value: str) -> bool:
    if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise typer.BadParameter(f"expected true or false, got {value!r}", param_hint="-s")
    return value.lower() in ("true", "1", "yes")


def _pairs(items: list[str], option: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=option)
        pairs[key.strip()] = value
    return pairs


# --- opening references ------------------------------------------------------------------


def _open(text: str) -> tuple[Repository, str | None]:
    """The repository a reference names and its revision (None when it has none)."""
    try:
        return split_reference(text, _storage_options.get())
    except RepositoryNotFoundError:
        parsed = parse_reference(text)
        advice = f"create one with 'vrepo init {parsed.location}'"
        if parsed.revision is None and "@" in text:
            after = text.rsplit("@", 1)[1]
            advice = (
                f"if {after!r} was meant as a revision, it is not a valid branch or tag name "
                "or snapshot id (write REPOSITORY@NAME[~N])"
            )
        raise RepositoryNotFoundError(
            f"no vrepo repository at {parsed.location!r}; {advice}"
        ) from None


def _open_snapshot(text: str) -> tuple[Repository, str]:
    """The repository and the snapshot id a reference names."""
    repo, revision = _open(text)
    return repo, repo.resolve(revision or DEFAULT_BRANCH)


def _by_id(snapshot_id: str | None) -> str | None:
    """A revision naming a snapshot by id only (no branch or tag lookups)."""
    return None if snapshot_id is None else f"snapshot:{snapshot_id}"


def _open_repo_only(text: str, command: str) -> Repository:
    repo, revision = _open(text)
    if revision is not None:
        raise InvalidArgumentError(
            f"{command} takes a repository, not a revision: drop '@{revision}' from {text!r}"
        )
    return repo


def _start_point(text: str, given: str | None, option: str) -> tuple[Repository, str]:
    """For create commands: the repository and the snapshot to start at (REPO@REV or REF)."""
    repo, revision = _open(text)
    if revision is not None and given is not None:
        raise InvalidArgumentError(
            f"two start points: '@{revision}' in {text!r} and {option} {given!r}; give one"
        )
    return repo, repo.resolve(given or revision or DEFAULT_BRANCH)


# --- output ---------------------------------------------------------------------------------


def _console() -> Console | None:
    """A rich console when stdout is a terminal, else None (plain text)."""
    if not sys.stdout.isatty():
        return None
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _out(console: Console | None, line: str) -> None:
    """One line: rich markup on a terminal, plain text otherwise."""
    if console is None:
        typer.echo(line)
    else:
        console.print(line)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _when(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _first_line(message: str) -> str:
    return message.splitlines()[0] if message else ""


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _shape(shape: Sequence[int] | None) -> str:
    return "" if shape is None else "(" + ", ".join(map(str, shape)) + ")"


def _plain_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    rows = [list(map(str, row)) for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    for row in [list(headers), *rows]:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    console = _console()
    if console is None:
        _plain_table(headers, rows)
        return
    from rich.table import Table

    table = Table(*headers, box=None, header_style="bold", pad_edge=False)
    for row in rows:
        table.add_row(*map(str, row))
    console.print(table)


# --- labels and snapshot records -------------------------------------------------------------


class _Labels:
    """Which branches and tags point at each snapshot."""

    def __init__(self, repo: Repository) -> None:
        branches, tags = repo.list_branches(), repo.list_tags()
        storage = repo.storage

        async def read_all() -> list[RefHead]:
            return await asyncio.gather(
                *(read_head(storage, "branch", name) for name in branches),
                *(read_head(storage, "tag", name) for name in tags),
            )

        heads = [head for head in run_sync(read_all()) if head.exists]  # none deleted since
        self.branch_heads = {h.name: h.record.snapshot_id for h in heads if h.kind == "branch"}
        self.tag_targets = {h.name: h.record.snapshot_id for h in heads if h.kind == "tag"}
        self.branches: dict[str, list[str]] = {}
        self.tags: dict[str, list[str]] = {}
        for name, sid in self.branch_heads.items():
            self.branches.setdefault(sid, []).append(name)
        for name, sid in self.tag_targets.items():
            self.tags.setdefault(sid, []).append(name)

    def of(self, snapshot_id: str) -> tuple[list[str], list[str]]:
        return self.branches.get(snapshot_id, []), self.tags.get(snapshot_id, [])

    def text(self, snapshot_id: str) -> str:
        branches, tags = self.of(snapshot_id)
        names = [*branches, *(f"tag: {t}" for t in tags)]
        return f"({', '.join(names)})" if names else ""


def _record(info: SnapshotInfo, labels: _Labels) -> dict[str, Any]:
    branches, tags = labels.of(info.id)
    return {
        "id": info.id,
        "parent_id": info.parent_id,
        "written_at": info.written_at.isoformat(),
        "message": info.message,
        "metadata": info.metadata,
        "branches": branches,
        "tags": tags,
    }


def _log_line(info: SnapshotInfo, labels: _Labels, console: Console | None) -> str:
    label = labels.text(info.id)
    if console is None:
        parts = [info.id, _when(info.written_at), label, _first_line(info.message)]
        return " ".join(p for p in parts if p)
    from rich.markup import escape

    text = f"[yellow]{info.id}[/] [dim]{_when(info.written_at)}[/]"
    if label:
        text += f" [bold green]{escape(label)}[/]"
    return f"{text} {escape(_first_line(info.message))}"


# --- commands: repositories and history ---------------------------------------------------------


@app.command()
def init(
    path: Annotated[str, typer.Argument(metavar="PATH", help="Directory or URL to create.")],
) -> None:
    """Create an empty repository (branch main at an empty first snapshot)."""
    repo = Repository.create(as_storage(path, _storage_options.get()))
    head = repo.lookup_branch(DEFAULT_BRANCH)
    typer.echo(f"Initialized empty vrepo repository at {repo.storage.url} (main at {head})")


@app.command()
def log(
    ref: RefArg,
    graph: Annotated[
        bool, typer.Option("--graph", help="Draw every branch and tag, like git log --graph --all.")
    ] = False,
    max_count: Annotated[
        int | None, typer.Option("-n", "--max-count", min=0, help="Show at most N snapshots.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Snapshots from REF back to the first, newest first."""
    repo, start = _open_snapshot(ref)
    labels = _Labels(repo)
    if graph:
        _log_graph(repo, start, labels, max_count, as_json)
        return
    infos = list(itertools.islice(repo.ancestry(snapshot_id=start), max_count))
    if as_json:
        _print_json([_record(info, labels) for info in infos])
        return
    console = _console()
    for info in infos:
        _out(console, _log_line(info, labels, console))


def _log_graph(
    repo: Repository, start: str, labels: _Labels, max_count: int | None, as_json: bool
) -> None:
    starts = dict.fromkeys([start, *labels.branch_heads.values(), *labels.tag_targets.values()])
    infos: dict[str, SnapshotInfo] = {}
    for sid in starts:
        for info in repo.ancestry(snapshot_id=sid):
            if info.id in infos:
                break
            infos[info.id] = info
    order = topo_order(
        GraphNode(i.id, i.parent_id, i.written_at.timestamp()) for i in infos.values()
    )
    if as_json:
        _print_json([_record(infos[n.id], labels) for n in order[:max_count]])
        return
    console = _console()
    shown, joins = 0, []
    for art, node in draw(order):
        drawn = art if console is None else f"[red]{art}[/]"
        if node is None:  # a row joining lanes: printed only if a snapshot follows
            joins.append(drawn)
            continue
        if max_count is not None and shown == max_count:
            break
        shown += 1
        for line in joins:
            _out(console, line)
        joins = []
        _out(console, f"{drawn} {_log_line(infos[node.id], labels, console)}")


@app.command()
def show(ref: RefArg, as_json: JsonOpt = False) -> None:
    """One snapshot: id, parent, time, message, metadata, labels and its changes."""
    repo, sid = _open_snapshot(ref)
    info = repo.lookup_snapshot(sid)
    labels = _Labels(repo)
    changes = repo.diff(_by_id(info.parent_id), _by_id(sid))
    if as_json:
        _print_json({**_record(info, labels), "changes": changes.to_dict()})
        return
    branches, tags = labels.of(sid)
    fields = [
        ("snapshot", info.id),
        ("parent", info.parent_id or "none (first snapshot)"),
        ("written", _when(info.written_at)),
        ("branches", ", ".join(branches) or "-"),
        ("tags", ", ".join(tags) or "-"),
        ("metadata", json.dumps(info.metadata, ensure_ascii=False) if info.metadata else "-"),
    ]
    console = _console()
    for name, value in fields:
        if console is None:
            typer.echo(f"{name + ':':<10} {value}")
        else:
            from rich.markup import escape

            console.print(f"[bold]{name + ':':<10}[/] {escape(value)}")
    typer.echo("")
    for line in (info.message or "(no message)").splitlines():
        typer.echo(f"    {line}")
    typer.echo("")
    typer.echo("changes from parent:" if info.parent_id else "changes:")
    _print_diff(changes)


@app.command()
def diff(
    from_ref: Annotated[str, typer.Argument(metavar="FROM", help="REPOSITORY[@REVISION].")],
    to_ref: Annotated[
        str | None,
        typer.Argument(
            metavar="[TO]",
            help="REPOSITORY[@REVISION] or @REVISION in FROM's repository (default: FROM's "
            "parent to FROM).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """What changed from one snapshot to another: nodes, chunk counts, objects."""
    repo, from_id = _open_snapshot(from_ref)
    if to_ref is None:
        to_id = from_id
        from_id = repo.lookup_snapshot(to_id).parent_id
    elif to_ref.startswith("@"):
        to_id = repo.resolve(to_ref[1:])
    else:
        try:
            other, to_id = _open_snapshot(to_ref)
        except RepositoryNotFoundError as exc:
            if "@" in to_ref:
                raise
            raise RepositoryNotFoundError(
                f"{exc}; to compare with a revision of {from_ref!r}, write @{to_ref}"
            ) from None
        if other.storage.url != repo.storage.url:
            raise InvalidArgumentError(
                f"{from_ref!r} and {to_ref!r} are in different repositories; diff compares two "
                "snapshots of one repository"
            )
    changes = repo.diff(_by_id(from_id), _by_id(to_id))
    if as_json:
        _print_json(changes.to_dict())
        return
    _print_diff(changes)


def _print_diff(changes: SnapshotDiff) -> None:
    if changes.is_empty():
        typer.echo("no changes")
        return
    counts = {c.path: f"+{c.added} ~{c.changed} -{c.removed}" for c in changes.chunks}
    rows = [
        (what, path, counts.pop(path, ""))
        for field, what in (
            ("added_groups", "added group"),
            ("added_arrays", "added array"),
            ("removed_groups", "removed group"),
            ("removed_arrays", "removed array"),
            ("metadata_changed", "metadata"),
        )
        for path in getattr(changes, field)
    ]
    rows += [("chunks", path, text) for path, text in counts.items()]
    rows += [
        (what, key, "")
        for field, what in (
            ("objects_added", "added object"),
            ("objects_changed", "changed object"),
            ("objects_removed", "removed object"),
        )
        for key in getattr(changes, field)
    ]
    rows.sort(key=lambda r: r[1])
    _table(("CHANGE", "PATH", "CHUNKS +added ~changed -removed"), rows)


@app.command()
def ls(ref: RefArg, as_json: JsonOpt = False) -> None:
    """The groups and arrays of a snapshot: shape, dtype, chunks and stored bytes."""
    repo, sid = _open_snapshot(ref)
    nodes = repo.list_nodes(_by_id(sid))
    total = sum(n.stored_bytes for n in nodes)
    if as_json:
        _print_json(
            {"snapshot_id": sid, "stored_bytes": total, "nodes": [n.to_dict() for n in nodes]}
        )
        return
    console = _console()
    if console is None:
        rows = [
            (
                n.path,
                n.kind,
                n.dtype or "",
                _shape(n.shape),
                _shape(n.chunk_shape),
                str(n.chunk_count) if n.kind == "array" else "",
                str(n.stored_bytes) if n.kind == "array" else "",
            )
            for n in nodes
        ]
        _plain_table(("PATH", "KIND", "DTYPE", "SHAPE", "CHUNKS", "STORED", "BYTES"), rows)
        return
    console.print(_tree(nodes, sid, total))


def _tree(nodes: list[NodeInfo], sid: str, total: int) -> Any:
    from rich.markup import escape
    from rich.tree import Tree

    root = Tree(f"[yellow]{sid}[/]  [dim]{_human_bytes(total)} stored[/]")
    branches: dict[str, Tree] = {}
    for node in nodes:
        parent_path = node.path.rsplit("/", 1)[0] or "/"
        parent = branches.get(parent_path, root) if node.path != "/" else root
        if node.kind == "group":
            branches[node.path] = parent.add(f"[bold blue]{escape(node.name)}[/]")
            continue
        parent.add(
            f"[bold]{escape(node.name)}[/]  {escape(node.dtype or '')} {_shape(node.shape)}  "
            f"[dim]chunks {_shape(node.chunk_shape)} · {node.chunk_count} stored · "
            f"{_human_bytes(node.stored_bytes)}[/]"
        )
    return root


# --- commands: branches and tags ------------------------------------------------------------


def _ref_rows(repo: Repository, targets: dict[str, str]) -> list[dict[str, Any]]:
    infos = {sid: repo.lookup_snapshot(sid) for sid in set(targets.values())}
    return [
        {
            "name": name,
            "snapshot_id": sid,
            "written_at": infos[sid].written_at.isoformat(),
            "message": infos[sid].message,
        }
        for name, sid in sorted(targets.items())
    ]


def _print_refs(repo: Repository, targets: dict[str, str], as_json: bool) -> None:
    rows = _ref_rows(repo, targets)
    if as_json:
        _print_json(rows)
        return
    _table(
        ("NAME", "SNAPSHOT", "WRITTEN", "MESSAGE"),
        [
            (
                r["name"],
                r["snapshot_id"],
                _when(dt.datetime.fromisoformat(r["written_at"])),
                _first_line(r["message"]),
            )
            for r in rows
        ],
    )


@branch_app.command("list")
def branch_list(repo_ref: RefArg, as_json: JsonOpt = False) -> None:
    """List branches with their head snapshots."""
    repo, _ = _open(repo_ref)
    _print_refs(repo, _Labels(repo).branch_heads, as_json)


@branch_app.command("create")
def branch_create(
    repo_ref: Annotated[
        str, typer.Argument(metavar="REPO", help="Repository (REPO@REVISION: start there).")
    ],
    name: Annotated[str, typer.Argument(help="New branch name.")],
    from_ref: Annotated[
        str | None,
        typer.Option("--from", metavar="REVISION", help="Start point (default: main's head)."),
    ] = None,
) -> None:
    """Create a branch at a snapshot."""
    repo, sid = _start_point(repo_ref, from_ref, "--from")
    repo.create_branch(name, sid)
    typer.echo(f"created branch {name} at {sid}")


@branch_app.command("delete")
def branch_delete(repo_ref: RepoArg, name: Annotated[str, typer.Argument()]) -> None:
    """Delete a branch (not main); its snapshots stay readable by id."""
    repo = _open_repo_only(repo_ref, "branch delete")
    sid = repo.lookup_branch(name)
    repo.delete_branch(name)
    typer.echo(f"deleted branch {name} (was {sid})")


@branch_app.command("reset")
def branch_reset(
    repo_ref: RepoArg,
    name: Annotated[str, typer.Argument()],
    to: Annotated[str, typer.Argument(metavar="REVISION", help="Where the branch will point.")],
) -> None:
    """Point a branch at another snapshot (recorded in its history)."""
    repo = _open_repo_only(repo_ref, "branch reset")
    before = repo.lookup_branch(name)
    sid = repo.resolve(to)
    repo.reset_branch(name, sid)
    typer.echo(f"reset branch {name} to {sid} (was {before})")


@tag_app.command("list")
def tag_list(repo_ref: RefArg, as_json: JsonOpt = False) -> None:
    """List tags with their snapshots."""
    repo, _ = _open(repo_ref)
    _print_refs(repo, _Labels(repo).tag_targets, as_json)


@tag_app.command("create")
def tag_create(
    repo_ref: Annotated[
        str, typer.Argument(metavar="REPO", help="Repository (REPO@REVISION: tag that).")
    ],
    name: Annotated[str, typer.Argument(help="New tag name.")],
    target: Annotated[
        str | None,
        typer.Argument(metavar="[REVISION]", help="Snapshot to tag (default: main's head)."),
    ] = None,
) -> None:
    """Tag a snapshot. Tags never move, and a deleted tag's name is never reused."""
    repo, sid = _start_point(repo_ref, target, "REVISION")
    repo.create_tag(name, sid)
    typer.echo(f"created tag {name} at {sid}")


@tag_app.command("delete")
def tag_delete(repo_ref: RepoArg, name: Annotated[str, typer.Argument()]) -> None:
    """Delete a tag; its name stays reserved."""
    repo = _open_repo_only(repo_ref, "tag delete")
    sid = repo.lookup_tag(name)
    repo.delete_tag(name)
    typer.echo(f"deleted tag {name} (was {sid})")


# --- commands: configuration ------------------------------------------------------------------


def _settings() -> Any:
    from vrepo import config as settings

    return settings


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _scalar(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@config_app.command("list")
def config_list(as_json: JsonOpt = False) -> None:
    """Every setting with its current value (defaults, files, VREPO_* variables, --config)."""
    settings = _settings()
    values = {key: settings.get(key) for key in sorted(_flat(settings.config.config))}
    if as_json:
        _print_json(values)
        return
    if _console() is None:
        for key, value in values.items():
            typer.echo(f"{key}={_scalar(value)}")
        return
    keys = getattr(settings, "KEYS", {})
    helps = {k: getattr(keys.get(k), "help", "") for k in values}
    _table(("KEY", "VALUE", "MEANING"), [(k, _scalar(v), helps[k]) for k, v in values.items()])
    typer.echo(f"\nuser settings file: {settings.user_config_path()}")


@config_app.command("get")
def config_get(
    key: Annotated[str, typer.Argument(help="Dotted key, e.g. dask.split-every.")],
    as_json: JsonOpt = False,
) -> None:
    """Print one setting's current value."""
    value = _settings().get(key)
    typer.echo(json.dumps(value) if as_json else _scalar(value))


@config_app.command("set")
def config_set(
    key: Annotated[str, typer.Argument(help="Dotted key, e.g. dask.split-every.")],
    value: Annotated[str, typer.Argument(help="New value (checked against the key's type).")],
) -> None:
    """Save a setting in the user's configuration file (applies to later commands)."""
    settings = _settings()
    path = settings.save_user_setting(key, value)
    typer.echo(f"{key} = {value} (saved in {path})")


def main() -> None:
    """Entry point of the ``vrepo`` console script."""
    try:
        app(prog_name="vrepo")
    except BrokenPipeError:  # e.g. `vrepo log r | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
