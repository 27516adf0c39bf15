"""``crmkit.collector_paused``: the cyclic garbage collector off for a block, shared by
nested and concurrent blocks, back on after the last of them only if it was on."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

import crmkit


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    """Each test starts with the collector on and leaves it on."""
    was_on = gc.isenabled()
    gc.enable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
        else:
            gc.disable()


def test_the_collector_is_off_in_the_block_and_on_after_it() -> None:
    with crmkit.collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_collector_already_off_stays_off() -> None:
    gc.disable()
    with crmkit.collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_an_error_in_the_block_does_not_keep_it_off() -> None:
    with pytest.raises(RuntimeError), crmkit.collector_paused():
        raise RuntimeError("a failed import")
    assert gc.isenabled()


def test_nested_blocks_restore_it_when_the_outer_one_ends() -> None:
    with crmkit.collector_paused():
        with crmkit.collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_it_comes_back_after_the_last_of_overlapping_blocks() -> None:
    outer = crmkit.collector_paused()
    inner = crmkit.collector_paused()
    outer.__enter__()
    inner.__enter__()
    outer.__exit__(None, None, None)  # the block that began first ends first
    assert not gc.isenabled()
    inner.__exit__(None, None, None)
    assert gc.isenabled()


def test_blocks_in_threads_share_the_pause() -> None:
    """Two threads pause at once; the collector stays off until both have left, whichever
    leaves first."""
    entered = threading.Barrier(3)
    first_may_leave = threading.Event()
    first_left = threading.Event()
    second_may_leave = threading.Event()
    seen: dict[str, bool] = {}

    def job(name: str, may_leave: threading.Event, left: threading.Event | None) -> None:
        with crmkit.collector_paused():
            entered.wait()
            may_leave.wait()
            seen[name] = gc.isenabled()
        if left is not None:
            left.set()

    first = threading.Thread(target=job, args=("first", first_may_leave, first_left))
    second = threading.Thread(target=job, args=("second", second_may_leave, None))
    first.start()
    second.start()
    entered.wait()
    assert not gc.isenabled()
    first_may_leave.set()
    first_left.wait()
    assert not gc.isenabled()  # the second thread is still in its block
    second_may_leave.set()
    first.join()
    second.join()
    assert seen == {"first": False, "second": False}
    assert gc.isenabled()
