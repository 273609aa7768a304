"""The gap-safe reader and the consumer loop against the real database: no event skipped, each applied once."""
from __future__ import annotations

import threading
import time
import uuid

import pytest
from sqlalchemy import text

from common.db.session import get_engine, session_factory
from common.events import record
from common.events.consumer import Consumer, ConsumerWorker
from tests.events.conftest import drain as drain_all


def write(kind: str, data: dict | None = None, aggregate_id: str = "1") -> uuid.UUID:
    """One event committed on its own."""
    with get_engine().begin() as conn:
        [event_id] = record(conn, kind, ("test", aggregate_id), data or {})
    return event_id


def drain(consumer: Consumer) -> int:
    return drain_all(consumer, session_factory())


def read_now(consumer: Consumer) -> int:
    """One batch, as the worker's tick: what can be read at this moment."""
    with session_factory()() as session:
        read = consumer.tick(session)
        session.commit()
    return read


class Collector:
    """Handlers that note what they applied, into a table of the test's own, in the consumer's transaction."""

    def __init__(self, kind: str, *, poison: str | None = None):
        self.kind, self.poison, self.calls = kind, poison, 0

    def __call__(self, session, event) -> None:
        self.calls += 1
        if self.poison and event.data.get("name") == self.poison:
            raise ValueError(f"cannot apply {self.poison}")
        session.execute(text("INSERT INTO test_applied (consumer, name) VALUES (:c, :n)"),
                        {"c": self.kind, "n": event.data["name"]})

    def applied(self) -> list[str]:
        with get_engine().connect() as conn:
            return list(conn.scalars(text("SELECT name FROM test_applied WHERE consumer = :c ORDER BY at, id"),
                                     {"c": self.kind}))


@pytest.fixture(scope="module", autouse=True)
def applied_table(database_url):
    with get_engine().begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS test_applied (id bigserial PRIMARY KEY, consumer text, "
                          "name text, at timestamptz DEFAULT clock_timestamp())"))
    yield
    with get_engine().begin() as conn:
        conn.execute(text("DROP TABLE test_applied"))


@pytest.fixture
def kind():
    """An event type of this test's own, so other tests' events are none of its consumer's business."""
    return f"test.{uuid.uuid4().hex[:12]}"


def consumer_for(kind: str, collector: Collector) -> Consumer:
    return Consumer(f"test-{kind}", {kind: collector})


def test_an_event_committed_after_a_later_one_is_still_applied(kind):
    """The gap: `first` takes its position before `second` but commits 2 s after it."""
    collector = Collector(kind)
    consumer = consumer_for(kind, collector)
    opened, committed = threading.Event(), threading.Event()

    def slow_writer():
        with get_engine().begin() as conn:
            record(conn, kind, ("test", "1"), {"name": "first"})
            opened.set()
            conn.execute(text("SELECT pg_sleep(2)"))
        committed.set()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    assert opened.wait(10)
    write(kind, {"name": "second"})
    # `second` is committed, but an older writer is open: reading past it could skip `first` for good.
    while read_now(consumer):
        pass
    assert collector.applied() == [] and not committed.is_set()
    writer.join(10)
    assert committed.is_set()
    drain(consumer)
    assert collector.applied() == ["first", "second"]


def test_a_redelivered_event_changes_nothing(kind):
    collector = Collector(kind)
    consumer = consumer_for(kind, collector)
    event_id = write(kind, {"name": "once"})
    drain(consumer)
    # Read again from the start, as a broker's redelivery or a lost position would.
    with get_engine().begin() as conn:
        conn.execute(text("DELETE FROM event_consumers WHERE name = :n"), {"n": consumer.name})
    drain(consumer)
    assert collector.applied() == ["once"] and collector.calls == 1
    with get_engine().connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM applied_events WHERE consumer = :c AND event_id = :e"),
                           {"c": consumer.name, "e": event_id}) == 1


def test_test_mode_delivers_each_event_two_or_three_times_out_of_order_and_each_applies_once(kind, environment):
    environment(TOKO_EVENTS_TEST_REDELIVER="on")
    collector = Collector(kind)
    consumer = consumer_for(kind, collector)
    names = [f"e{i}" for i in range(20)]
    for name in names:
        write(kind, {"name": name})
    # Readable once every transaction older than theirs has ended, on the whole server (xids are shared).
    deadline = time.monotonic() + 30
    while True:
        with session_factory()() as session:
            deliveries = consumer._deliveries(consumer.read(session, 1000))
        mine = [event for event in deliveries if event.type == kind]
        if len({event.id for event in mine}) == len(names) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert 40 <= len(mine) <= 60 and [e.data["name"] for e in mine] != sorted(e.data["name"] for e in mine)
    drain(consumer)
    assert sorted(collector.applied()) == sorted(names) and collector.calls == len(names)


def test_a_poison_event_is_set_aside_and_the_consumer_goes_on_then_replays_it(kind):
    collector = Collector(kind, poison="bad")
    consumer = consumer_for(kind, collector)
    write(kind, {"name": "before"})
    bad = write(kind, {"name": "bad"})
    write(kind, {"name": "after"})
    drain(consumer)
    assert collector.applied() == ["before", "after"]
    with get_engine().connect() as conn:
        [(event_id, reason)] = conn.execute(text(
            "SELECT event_id, reason FROM event_dead_letters WHERE consumer = :c"), {"c": consumer.name}).all()
        assert conn.scalar(text("SELECT count(*) FROM applied_events WHERE consumer = :c AND event_id = :e"),
                           {"c": consumer.name, "e": bad}) == 0
    assert event_id == bad and reason == "ValueError: cannot apply bad"
    # Still broken: it stays set aside, with the reason.
    with session_factory()() as session:
        assert consumer.replay(session, bad) is False
        session.commit()
    collector.poison = None
    with session_factory()() as session:
        assert consumer.replay(session, bad) is True
        session.commit()
    assert collector.applied() == ["before", "after", "bad"]
    with get_engine().connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM event_dead_letters WHERE consumer = :c"),
                           {"c": consumer.name}) == 0


def run_in_thread(worker: ConsumerWorker) -> threading.Thread:
    """The worker's loop without its signal handlers (those belong to a program's main thread)."""

    def loop():
        while not worker.stopping.is_set():
            if not worker.run_once():
                worker.idle(worker.idle_seconds)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def wait_for(condition, seconds: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if condition():
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"not within {seconds} s")


@pytest.mark.parametrize("bell_ms, poll_ms", [("20", "60000"), ("0", "200")], ids=["bell", "polling"])
def test_the_worker_is_woken_by_the_bell_or_finds_events_by_polling(kind, environment, bell_ms, poll_ms):
    environment(TOKO_EVENTS_BELL_MS=bell_ms, TOKO_EVENTS_POLL_MS=poll_ms)
    collector = Collector(kind)
    worker = ConsumerWorker(consumer_for(kind, collector), service="report")
    thread = run_in_thread(worker)
    try:
        wait_for(lambda: worker._listener is not None, 10)
        time.sleep(0.3)  # the worker has read everything and is waiting
        write(kind, {"name": "rung"})
        # With a minute's polling only the bell can be this quick.
        assert wait_for(lambda: collector.applied() == ["rung"], 5) < 5
    finally:
        worker.stop()
        thread.join(10)
        worker._close_listener()


def test_the_worker_looks_again_soon_when_events_wait_behind_an_open_writer(kind, environment):
    """The bell rang while the older writer was still open: nothing was readable then, and no bell follows
    its commit. A minute's polling would leave both events waiting; the worker looks again within 0.1 s."""
    environment(TOKO_EVENTS_BELL_MS="20", TOKO_EVENTS_POLL_MS="60000")
    collector = Collector(kind)
    worker = ConsumerWorker(consumer_for(kind, collector), service="report")
    thread = run_in_thread(worker)
    try:
        wait_for(lambda: worker._listener is not None, 10)
        with get_engine().begin() as conn:
            record(conn, kind, ("test", "1"), {"name": "older"})
            write(kind, {"name": "newer"})
            time.sleep(1)  # the bell has rung; the worker found both events held back
            assert collector.applied() == []
        assert wait_for(lambda: collector.applied() == ["older", "newer"], 5) < 2
    finally:
        worker.stop()
        thread.join(10)
        worker._close_listener()


def test_with_listen_off_the_worker_opens_no_listening_session_and_polls(kind, environment):
    """Behind a pooler in transaction mode a LISTEN would be lost: off, the worker polls alone."""
    environment(TOKO_EVENTS_LISTEN="off", TOKO_EVENTS_BELL_MS="20", TOKO_EVENTS_POLL_MS="200")
    collector = Collector(kind)
    worker = ConsumerWorker(consumer_for(kind, collector), service="report")
    thread = run_in_thread(worker)
    try:
        write(kind, {"name": "polled"})
        wait_for(lambda: collector.applied() == ["polled"], 5)
        assert worker._listener is None
        with get_engine().connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :a"),
                               {"a": f"toko-{worker.name}-listen"}) == 0
    finally:
        worker.stop()
        thread.join(10)
