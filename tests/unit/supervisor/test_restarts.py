"""Backoff and crash-loop quarantine, with a fake clock."""

from __future__ import annotations

from failwell.config.managed import RestartConfig
from failwell.supervisor.restarts import Restarts
from failwell.testing.fakes import FakeClock


def test_backoff_doubles_to_its_cap_and_the_crash_loop_quarantines_once() -> None:
    clock = FakeClock()
    restarts = Restarts(RestartConfig(backoff=0.5, max_backoff=3, crash_loop=4, window=60), clock)
    waits = []
    for _ in range(5):
        wait, quarantine = restarts.failed()
        waits.append((wait, quarantine))
        clock.advance(1.0)
    assert waits == [(0.5, False), (1.0, False), (2.0, False), (3, True), (3, False)]
    assert not restarts.may_start()
    assert restarts.status()["failures_in_window"] == 5
    assert restarts.release() and restarts.may_start() and not restarts.release()


def test_failures_older_than_the_window_are_forgotten() -> None:
    clock = FakeClock()
    restarts = Restarts(RestartConfig(backoff=1, window=10, crash_loop=3), clock)
    restarts.failed()
    clock.advance(11)
    assert restarts.failed() == (1, False)
    assert not restarts.may_start()
    clock.advance(1)
    assert restarts.may_start()
