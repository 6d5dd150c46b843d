"""Progress of long operations: shown when someone watches, kept out of batch logs.

``progress=None`` (the default of every operation that takes it) means: show it when
standard error is a terminal or the code runs in a Jupyter kernel; True and False force it.
`compute` runs a dask collection with dask's own progress bar on a distributed client (a
widget in Jupyter, text in a terminal) and a rich bar on any other scheduler; `steps` shows
the phases of a maintenance operation (garbage collection, expiry) as a rich status line.
rich, dask and distributed are imported only when a bar is shown.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

Note = Callable[[str], None]
"""Tells the person watching which phase an operation is in (a no-op when nobody is)."""


def in_notebook() -> bool:
    """Whether this process is a Jupyter (IPython) kernel."""
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    return get is not None and type(get()).__name__ == "ZMQInteractiveShell"


def wanted(progress: bool | None) -> bool:
    """Whether to show progress: ``progress``, or by default when somebody is watching."""
    if progress is not None:
        return bool(progress)
    stderr = sys.stderr
    return in_notebook() or (stderr is not None and stderr.isatty())


def compute(collection: Any, *, progress: bool | None, description: str) -> Any:
    """``dask.compute(collection)[0]``, with a progress bar if `wanted`."""
    import dask

    if not wanted(progress):
        return dask.compute(collection)[0]
    client = _distributed_client(collection)
    if client is not None:
        from distributed import progress as distributed_progress

        future = client.compute(collection)
        distributed_progress(future, notebook=in_notebook())
        return future.result()
    with _RichTasks(description):
        return dask.compute(collection)[0]


def _distributed_client(collection: Any) -> Any:
    """The distributed client that would run ``collection``, if one would."""
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        from dask.base import get_scheduler

        owner = getattr(get_scheduler(collections=[collection]), "__self__", None)
    except Exception:  # dask's scheduler lookup moved: fall back to the rich bar
        return None
    return owner if isinstance(owner, distributed.Client) else None


class _RichTasks:
    """A rich progress bar over the tasks of a computation on dask's local schedulers."""

    def __init__(self, description: str) -> None:
        from dask.callbacks import Callback
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self._bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self._task = self._bar.add_task(description, total=None)
        bar, task = self._bar, self._task

        class Tasks(Callback):
            def _start_state(self, dsk: Any, state: dict[str, Any]) -> None:
                keys = ("ready", "waiting", "running", "finished")
                bar.update(task, total=sum(len(state[k]) for k in keys))

            def _posttask(self, *args: Any) -> None:
                bar.advance(task)

        self._callback = Tasks()

    def __enter__(self) -> _RichTasks:
        self._bar.start()
        self._callback.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._callback.__exit__(*exc)
        self._bar.stop()


@contextlib.contextmanager
def steps(title: str, *, progress: bool | None) -> Iterator[Note]:
    """A `Note` that shows ``title`` and the current phase on a status line, if `wanted`."""
    if not wanted(progress):
        yield silent
        return
    from rich.console import Console

    console = Console(stderr=True)
    with console.status(title) as status:
        yield lambda phase: status.update(f"{title}: {phase}")


def silent(phase: str) -> None:
    return None
