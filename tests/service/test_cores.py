"""Workers telling each other when they score (service/cores.py), as separate processes, as the server runs them."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
from types import SimpleNamespace

from service.cores import CoreShare


def hold_busy(path, workers, started, release):
    share = CoreShare(path, workers)
    with share.busy():
        started.set()
        release.wait(30)


@contextlib.contextmanager
def sibling_scoring(path, workers):
    """A sibling worker process that is scoring until the caller calls the yielded `stop()`."""
    ctx = mp.get_context("fork")  # the target lives in this test module, which a spawned child cannot import
    started, release = ctx.Event(), ctx.Event()
    sibling = ctx.Process(target=hold_busy, args=(path, workers, started, release))
    sibling.start()

    def stop():
        release.set()
        sibling.join(30)

    try:
        assert started.wait(30)
        yield stop
    finally:
        stop()


def test_a_worker_is_alone_only_while_no_sibling_scores(tmp_path):
    path = tmp_path / "cores.lock"
    with sibling_scoring(path, 2) as stop:
        me = CoreShare(path, 2)
        assert me.slot == 1  # the sibling owns slot 0
        with me.busy():
            assert not me.alone()  # the sibling is scoring
        stop()
        with me.busy():
            assert me.alone()  # it finished (and its locks went with it)
        me.close()


def test_a_worker_without_a_slot_never_takes_every_core(tmp_path):
    path = tmp_path / "cores.lock"
    with sibling_scoring(path, 1):
        extra = CoreShare(path, 1)  # one slot, already owned
        assert extra.slot is None
        with extra.busy():
            assert not extra.alone()


def test_only_a_lone_image_with_no_sibling_scoring_takes_every_core(tmp_path):
    """DetectorAPI.score: the wide session for one image alone; a batch means load, which the sibling shares:
    going wide then put three threads on two cores (the sibling starts its own batch a moment later)."""
    import numpy as np

    from service.api import DetectorAPI

    api = DetectorAPI.__new__(DetectorAPI)
    used = []
    api.bundle = SimpleNamespace(
        score_tensor=lambda x: used.append(("narrow", len(x))) or np.zeros(len(x)), calibrate=lambda z: z
    )
    api.wide = SimpleNamespace(logits=lambda x: used.append(("wide", len(x))) or np.zeros(len(x)))
    path = tmp_path / "cores.lock"
    api.cores = CoreShare(path, 2)
    one, two = np.zeros((1, 3, 8, 8), np.float32), np.zeros((2, 3, 8, 8), np.float32)
    api.score(one)
    api.score(two)
    with sibling_scoring(path, 2):
        api.score(one)
    assert used == [("wide", 1), ("narrow", 2), ("narrow", 1)]
    api.cores.close()
