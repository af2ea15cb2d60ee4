"""The database stage: one batch at a time, in order, on its own thread (or inline)."""

from __future__ import annotations

import threading

import pytest

from entity_sync.runtime.delivery import Delivery
from entity_sync.runtime.result import BatchResult
from entity_sync.runtime.stage import InlineStage, ThreadStage
from tests.support.waiting import wait_for


def _batch(tag: int) -> list[Delivery]:
    return [Delivery("q", "rk", "ex", b"{}", delivery_tag=tag)]


def _busy(stage: InlineStage | ThreadStage) -> bool:
    return stage.busy  # read through a call: mypy would keep an asserted property narrowed


class _Gated:
    """A batch run that waits for the test to let it finish, and records its thread."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.threads: list[str] = []

    def __call__(self, batch: list[Delivery]) -> BatchResult | None:
        self.threads.append(threading.current_thread().name)
        assert self.release.wait(30), "the test never released the batch"
        result = BatchResult()
        result.fates["applied"] = batch[0].delivery_tag
        return result


def test_a_thread_stage_runs_the_batch_off_the_calling_thread_and_hands_it_back() -> None:
    run = _Gated()
    stage = ThreadStage(run, name="database-test")
    stage.submit(_batch(7))
    assert _busy(stage)
    wait_for(lambda: run.threads == ["database-test"], what="the batch started on the stage")
    assert stage.take() is None, "handed back before it finished"
    run.release.set()
    stage.wait(30)
    done = stage.take()
    assert done is not None
    assert done.result is not None
    assert done.result.fates["applied"] == 7
    assert done.batch[0].delivery_tag == 7
    assert not _busy(stage)
    assert stage.take() is None


def test_a_thread_stage_takes_one_batch_at_a_time_and_keeps_their_order() -> None:
    run = _Gated()
    run.release.set()
    stage = ThreadStage(run)
    for tag in (1, 2, 3):
        stage.submit(_batch(tag))
        with pytest.raises(AssertionError):
            stage.submit(_batch(99))  # the stage is busy until the result is taken
        stage.wait(30)
        done = stage.take()
        assert done is not None
        assert done.result is not None
        assert done.result.fates["applied"] == tag
    assert len(set(run.threads)) == 1, "one thread runs every batch"


def test_what_a_batch_raises_on_the_stage_is_raised_by_take() -> None:
    class Died(BaseException):
        pass

    def run(_batch: list[Delivery]) -> BatchResult | None:
        raise Died

    stage = ThreadStage(run)
    stage.submit(_batch(1))
    stage.wait(30)
    with pytest.raises(Died):
        stage.take()
    assert not _busy(stage)


def test_an_inline_stage_runs_the_batch_when_submitted_on_the_calling_thread() -> None:
    run = _Gated()
    run.release.set()
    stage = InlineStage(run)
    stage.submit(_batch(4))
    assert run.threads == [threading.current_thread().name]
    assert _busy(stage)
    done = stage.take()
    assert done is not None
    assert done.result is not None
    assert done.result.fates["applied"] == 4
    assert not _busy(stage)


def test_a_batch_given_up_while_stopping_comes_back_without_a_result() -> None:
    stage = ThreadStage(lambda _batch: None)
    stage.submit(_batch(1))
    stage.wait(30)
    done = stage.take()
    assert done is not None
    assert done.result is None
