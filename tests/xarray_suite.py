"""xarray's own zarr backend test base (shipped in the xarray wheel), made importable here.

xarray's test modules use marks that xarray registers in its own (unshipped) pytest
configuration; under this project's ``--strict-markers`` importing them would fail. They are
registered first, then the base class and the fixtures its tests need are re-exported, with
`xarray_marks` (what xarray's configuration does with its marks) and `compared_with` (a
failure counts only where the baseline store passes the same test).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import pytest

XARRAY_MARKERS = {
    "flaky": "xarray: flaky tests (run with --run-flaky in xarray's own CI)",
    "network": "xarray: tests that need the internet",
    "skip_if_param": "xarray: skip when the test's parameters match the mark's keywords",
    "skip_with_dask_array": "xarray: skip under the dask-array chunk manager",
    "xfail_with_dask_array": "xarray: xfail under the dask-array chunk manager",
}


def _register_markers() -> None:
    """Register xarray's marks unless the project configuration already does.

    pytest offers no public handle on its config at import time, so this uses the mark
    generator's (``pytest.mark._config``); with the marks in pyproject it does nothing.
    """
    config = getattr(pytest.mark, "_config", None)
    if config is None:  # not under pytest: marks are not checked
        return
    known = {line.split(":", 1)[0].split("(", 1)[0].strip() for line in config.getini("markers")}
    for name, text in XARRAY_MARKERS.items():
        if name not in known:
            config.addinivalue_line("markers", f"{name}: {text}")


_register_markers()

import xarray.tests.conftest as _xarray_conftest  # noqa: E402
from xarray.tests.test_backends import ZarrBase  # noqa: E402

# the fixtures of xarray's test conftest that ZarrBase's tests take (which exist varies)
FIXTURES = {
    name: getattr(_xarray_conftest, name)
    for name in ("time_unit", "use_dask")
    if hasattr(_xarray_conftest, name)
}


_running: dict[str, pytest.Item] = {}  # the test being run (one at a time per process)


def xarray_marks(request: pytest.FixtureRequest) -> None:
    """For an autouse fixture: apply xarray's ``skip_if_param`` marks (skip when every keyword
    matches a parameter) and note the test, whose own xfail marks `compared_with` respects."""
    _running["test"] = request.node
    params = getattr(request.node, "callspec", None)
    values = params.params if params is not None else {}
    for mark in request.node.iter_markers("skip_if_param"):
        wanted = {k: v for k, v in mark.kwargs.items() if k not in ("reason", "condition")}
        if mark.kwargs.get("condition", True) and all(
            k in values and values[k] == v for k, v in wanted.items()
        ):
            pytest.skip(mark.kwargs.get("reason", "skip_if_param"))


# what a failing test raises (pytest.fail raises an OutcomeException, not an Exception)
FAILURES = (Exception, pytest.fail.Exception)


def _judged_elsewhere(error: BaseException) -> bool:
    """Whether xarray itself decides this failure: an xfail it raised or marked."""
    test = _running.get("test")
    return isinstance(error, pytest.xfail.Exception) or (
        test is not None and test.get_closest_marker("xfail") is not None
    )


def _verdict(error: BaseException, baseline: type | None, again: Any) -> None:
    """xfail the failed test if its baseline run (``again``) failed alike, or has no baseline."""
    if baseline is None:
        pytest.xfail(f"fails with zarr's own store (this xarray/zarr/pandas): {error!r}"[:300])
    if isinstance(again, BaseException) and type(again) is type(error):
        pytest.xfail(f"fails alike on {baseline.__name__}: {error!r}"[:300])


def _failure_of(call: Callable[[], Any]) -> BaseException | None:
    try:
        call()
    except FAILURES as error:
        return error
    return None


async def _async_failure_of(call: Callable[[], Any]) -> BaseException | None:
    try:
        await call()
    except FAILURES as error:
        return error
    return None


def _compared(test: Callable[..., Any], baseline: type | None) -> Callable[..., Any]:
    """``test``, judged against the same test on ``baseline`` when it fails."""
    name = test.__name__
    plain = getattr(baseline, name, None)
    plain = getattr(plain, "unjudged", plain)  # the baseline's test without its own judging

    def rerun(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Callable[[], Any]:
        return functools.partial(plain, baseline(), *args, **kwargs)

    if inspect.iscoroutinefunction(test):

        @functools.wraps(test)
        async def judged_async(self: Any, *args: Any, **kwargs: Any) -> None:
            try:
                await test(self, *args, **kwargs)
            except FAILURES as error:
                if not _judged_elsewhere(error):
                    _verdict(
                        error, baseline, plain and await _async_failure_of(rerun(args, kwargs))
                    )
                raise

        judged_async.unjudged = test
        return judged_async

    @functools.wraps(test)
    def judged(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            test(self, *args, **kwargs)
        except FAILURES as error:
            if not _judged_elsewhere(error):
                _verdict(error, baseline, plain and _failure_of(rerun(args, kwargs)))
            raise

    judged.unjudged = test
    return judged


def compared_with(baseline: type | None) -> Callable[[type], type]:
    """Class decorator: a failing test is a failure only where ``baseline`` passes it.

    A test that fails is run again on ``baseline`` (zarr's own store); if that fails with
    the same exception type, the failure is the environment's (xarray, zarr and pandas
    versions), not the store's, and the test is xfailed with both reasons shown. With
    ``baseline=None`` (the baseline class itself) every failure is such an xfail.
    """

    def decorate(cls: type) -> type:
        for name in dir(cls):
            if name.startswith("test_") and callable(getattr(cls, name)):
                setattr(cls, name, _compared(getattr(cls, name), baseline))
        return cls

    return decorate


__all__ = ["FIXTURES", "ZarrBase", "compared_with", "xarray_marks"]
