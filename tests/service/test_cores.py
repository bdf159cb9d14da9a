"""Workers telling each other when they score (service/cores.py), as separate processes, as the server runs them."""

from __future__ import annotations

import multiprocessing as mp

from service.cores import CoreShare


def hold_busy(path, workers, started, release):
    share = CoreShare(path, workers)
    with share.busy():
        started.set()
        release.wait(30)


def test_a_worker_is_alone_only_while_no_sibling_scores(tmp_path):
    path = tmp_path / "cores.lock"
    ctx = mp.get_context("fork")  # the target lives in this test module, which a spawned child cannot import
    started, release = ctx.Event(), ctx.Event()
    sibling = ctx.Process(target=hold_busy, args=(path, 2, started, release))
    sibling.start()
    try:
        assert started.wait(30)
        me = CoreShare(path, 2)
        assert me.slot == 1  # the sibling owns slot 0
        with me.busy():
            assert not me.alone()  # the sibling is scoring
        release.set()
        sibling.join(30)
        with me.busy():
            assert me.alone()  # it finished (and its locks went with it)
        me.close()
    finally:
        release.set()
        sibling.join(30)


def test_a_worker_without_a_slot_never_takes_every_core(tmp_path):
    path = tmp_path / "cores.lock"
    ctx = mp.get_context("fork")  # the target lives in this test module, which a spawned child cannot import
    started, release = ctx.Event(), ctx.Event()
    sibling = ctx.Process(target=hold_busy, args=(path, 1, started, release))
    sibling.start()
    try:
        assert started.wait(30)
        extra = CoreShare(path, 1)  # one slot, already owned
        assert extra.slot is None
        with extra.busy():
            assert not extra.alone()
    finally:
        release.set()
        sibling.join(30)
