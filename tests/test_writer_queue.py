"""SQLite writers of all worker processes take turns on a file lock before ``BEGIN IMMEDIATE``.

Why it exists is latency (SQLite's busy handler sleeps in coarse steps; see
``storage.db.WriterQueue``); what a user relies on is that it never loses or blocks a write:
writers are served one at a time, a write inside a write does not wait for itself, and a turn
that cannot be had in time is not a hang but a hand-over to SQLite's own lock and timeout.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

from consent_service.storage.db import _WRITER_QUEUES, WriterQueue, make_engine, session_factory, write


def other_process_holds(path: Path) -> int:
    """An flock on ``path`` through a descriptor of its own, as another worker process would hold it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def is_free(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_a_sqlite_file_engine_queues_its_writers_and_memory_does_not(tmp_path):
    on_disk = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    assert _WRITER_QUEUES[on_disk].path == tmp_path / "x.db.writer-lock"
    assert make_engine("sqlite://") not in _WRITER_QUEUES


def test_a_second_writer_waits_for_the_first_to_finish(tmp_path):
    queue = WriterQueue(tmp_path / "lock", timeout_s=5)
    first_in, second_in, let_first_go = threading.Event(), threading.Event(), threading.Event()
    order: list[str] = []

    def first() -> None:
        with queue.turn():
            order.append("first in")
            first_in.set()
            let_first_go.wait(5)
            order.append("first out")

    def second() -> None:
        first_in.wait(5)
        with queue.turn():
            order.append("second in")
            second_in.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    first_in.wait(5)
    assert not second_in.wait(0.2)  # still waiting its turn
    let_first_go.set()
    for thread in threads:
        thread.join(10)
    assert order == ["first in", "first out", "second in"]
    assert is_free(tmp_path / "lock")


def test_another_processs_turn_is_waited_for_and_a_write_inside_a_write_is_not(tmp_path):
    queue = WriterQueue(tmp_path / "lock", timeout_s=5)
    held = other_process_holds(tmp_path / "lock")
    entered = threading.Event()

    def writer() -> None:
        with queue.turn():
            with queue.turn():  # nested: must not wait for itself
                pass
            assert not is_free(tmp_path / "lock")  # the inner turn did not release the outer's
            entered.set()

    thread = threading.Thread(target=writer)
    thread.start()
    assert not entered.wait(0.2)
    fcntl.flock(held, fcntl.LOCK_UN)
    os.close(held)
    thread.join(10)
    assert entered.is_set() and is_free(tmp_path / "lock")


def test_a_turn_that_never_comes_hands_over_to_sqlite_instead_of_hanging(tmp_path):
    queue = WriterQueue(tmp_path / "lock", timeout_s=0.05)
    held = other_process_holds(tmp_path / "lock")
    went_ahead = threading.Event()

    def writer() -> None:
        with queue.turn():
            went_ahead.set()

    thread = threading.Thread(target=writer)
    thread.start()
    thread.join(10)
    assert went_ahead.is_set()
    os.close(held)


def test_writes_through_the_queue_all_land(tmp_path):
    from sqlalchemy import text

    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    sessions = session_factory(engine)
    with write(sessions) as session:
        session.execute(text("CREATE TABLE t (n INTEGER)"))
        session.commit()

    def add(start: int) -> None:
        for n in range(start, start + 50):
            with write(sessions) as session:
                session.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
                session.commit()

    threads = [threading.Thread(target=add, args=(k * 50,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    with sessions() as session:
        assert session.execute(text("SELECT count(*), count(DISTINCT n) FROM t")).one() == (200, 200)
    assert is_free(tmp_path / "x.db.writer-lock")


def test_engines_that_are_gone_leave_no_lock_file_open(tmp_path):
    """Tests and tools make many apps in one process: each engine's lock file closes with it."""
    import gc

    from sqlalchemy import text

    def open_descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    def one_write(n: int) -> None:
        engine = make_engine(f"sqlite:///{tmp_path / f'{n}.db'}")
        with write(session_factory(engine)) as session:
            session.execute(text("CREATE TABLE t (n INTEGER)"))
            session.commit()
        engine.dispose()

    one_write(0)
    gc.collect()
    before = open_descriptors()
    for n in range(1, 21):
        one_write(n)
    gc.collect()
    assert open_descriptors() <= before
