"""Maintenance commands: ``vrepo expire`` (cut old snapshots out of histories), ``vrepo gc``
(delete what nothing reaches) and ``vrepo du`` (where the bytes are)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Annotated

import typer

import vrepo.cli._render as render
from vrepo.cli._lookup import by_id, open_repo_only, open_snapshot
from vrepo.cli._options import JsonOpt, RefArg, RepoArg
from vrepo.errors import InvalidArgumentError

commands = typer.Typer()  # merged into the root app: ``vrepo expire``, ``gc`` and ``du``

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_AGE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_AGE_HELP = "an age such as 90d, 12h, 30m or 0s, or a time such as 2026-01-31T00:00Z"


def parse_age(text: str, option: str, *, past: bool = False) -> dt.timedelta | dt.datetime:
    """An age (``90d``, ``12h``) or an ISO time (UTC unless it says otherwise); with
    ``past``, a time must not be in the future (a grace period cannot end later)."""
    match = _AGE.fullmatch(text.strip().lower())
    if match:
        return dt.timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidArgumentError(f"{option} takes {_AGE_HELP}; got {text!r}") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    if past and moment > dt.datetime.now(dt.UTC):
        raise InvalidArgumentError(
            f"{option} {text} is in the future: give a time that has passed, or an age (7d)"
        )
    return moment


OlderThan = Annotated[
    str, typer.Option("--older-than", metavar="AGE", help=f"Grace period: {_AGE_HELP}.")
]


@commands.command()
def expire(
    repo_text: RepoArg,
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than", metavar="AGE", help=f"Expire snapshots older than this: {_AGE_HELP}."
        ),
    ],
    branch: Annotated[
        str | None, typer.Option("--branch", help="Cut only this branch's history.")
    ] = None,
    drop_tags: Annotated[
        bool,
        typer.Option("--drop-tags", help="Let tagged snapshots leave branch histories too."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Cut old snapshots out of branch histories (heads, tags and the first stay).

    Expired snapshots still read by id until 'vrepo gc' deletes them.
    """
    repo = open_repo_only(repo_text, "vrepo expire")
    when = parse_age(older_than, "--older-than")
    expired = repo.expire_snapshots(when, branch=branch, keep_tags=not drop_tags)
    if as_json:
        render.print_json({"expired": expired})
        return
    typer.echo(f"expired {len(expired)} snapshot(s)")
    for snapshot_id in expired:
        typer.echo(f"  {snapshot_id}")
    if expired:
        typer.echo("run 'vrepo gc' to free their space once the grace period has passed")


@commands.command()
def gc(
    repo_text: RepoArg,
    older_than: OlderThan = "7d",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only report what would be deleted.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete what no branch, tag or retained snapshot reaches, past the grace period.

    Anything written within the grace period (sessions, forks and jobs not yet committed)
    is kept: make it longer than any write takes.
    """
    repo = open_repo_only(repo_text, "vrepo gc")
    grace = parse_age(older_than, "--older-than", past=True)
    report = repo.garbage_collect(older_than=grace, dry_run=dry_run)
    if as_json:
        render.print_json({**dataclasses.asdict(report), "objects": report.objects})
        return
    verb = "would delete" if dry_run else "deleted"
    kinds = ("chunks", "manifests", "snapshots", "transaction_logs", "history_pages", "other")
    parts = [f"{getattr(report, k)} {k.replace('_', ' ')}" for k in kinds if getattr(report, k)]
    freed = render.human_bytes(report.bytes_freed)
    typer.echo(f"{verb} {report.objects} object(s), {freed}: " + (", ".join(parts) or "nothing"))
    mode = "since the last collection" if report.incremental else "every object listed"
    typer.echo(f"kept {report.retained_snapshots} snapshot(s); {mode}; {report.seconds:.2f} s")


@commands.command()
def du(ref: RefArg, older_than: OlderThan = "7d", as_json: JsonOpt = False) -> None:
    """Stored bytes of REF's arrays: unique to it or shared with other snapshots, and what
    'vrepo gc' would free now."""
    repo, snapshot_id = open_snapshot(ref)
    grace = parse_age(older_than, "--older-than", past=True)
    usage = repo.disk_usage(by_id(snapshot_id), older_than=grace)
    if as_json:
        render.print_json(usage.to_dict())
        return
    size = render.human_bytes
    rows = [
        (a.path, str(a.chunks), size(a.stored_bytes), size(a.unique_bytes), size(a.shared_bytes))
        for a in usage.arrays
    ]
    chunks = str(sum(a.chunks for a in usage.arrays))
    shared = usage.stored_bytes - usage.unique_bytes
    rows.append(("total", chunks, size(usage.stored_bytes), size(usage.unique_bytes), size(shared)))
    render.table(["array", "chunks", "stored", "unique", "shared"], rows)
    typer.echo(
        f"reclaimable now: {size(usage.reclaimable_bytes)} in {usage.reclaimable_objects} "
        f"object(s) (vrepo gc --older-than {older_than})"
    )
