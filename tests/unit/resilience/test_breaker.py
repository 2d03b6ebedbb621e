from hypothesis import given, settings
from hypothesis import strategies as st

from failwell.resilience.breaker import Breaker, BreakerState
from failwell.testing import FakeClock


def make(threshold: int = 3, recovery: float = 10.0, probes: int = 1) -> tuple[Breaker, FakeClock]:
    clock = FakeClock()
    return Breaker(threshold, recovery, probes, clock), clock


def test_opens_after_threshold_consecutive_failures() -> None:
    b, _ = make(threshold=3)
    b.record_failure()
    b.record_failure()
    assert b.state is BreakerState.CLOSED
    b.record_success()  # resets the count
    b.record_failure()
    b.record_failure()
    assert b.state is BreakerState.CLOSED
    b.record_failure()
    assert b.state is BreakerState.OPEN
    assert not b.acquire()


def test_half_open_after_recovery_then_closes_on_success() -> None:
    b, clock = make(threshold=1, recovery=5.0)
    b.record_failure()
    clock.advance(4.9)
    assert b.state is BreakerState.OPEN
    clock.advance(0.2)
    assert b.state is BreakerState.HALF_OPEN
    assert b.acquire()
    assert not b.acquire()  # one probe at a time
    b.record_success()
    assert b.state is BreakerState.CLOSED


def test_half_open_failure_reopens_for_full_recovery() -> None:
    b, clock = make(threshold=1, recovery=5.0, probes=2)
    b.record_failure()
    clock.advance(5)
    assert b.acquire() and b.acquire() and not b.acquire()
    b.record_failure()
    assert b.state is BreakerState.OPEN
    clock.advance(4.9)
    assert b.state is BreakerState.OPEN


def test_release_returns_probe_slot() -> None:
    b, clock = make(threshold=1, recovery=1.0)
    b.record_failure()
    clock.advance(1)
    assert b.acquire()
    b.release()
    assert b.acquire()


def test_listeners_see_each_transition() -> None:
    b, clock = make(threshold=1, recovery=1.0)
    seen: list[tuple[BreakerState, BreakerState]] = []
    b.on_change(lambda old, new: seen.append((old, new)))
    b.record_failure()
    clock.advance(1)
    assert b.acquire()
    b.record_success()
    assert seen == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]


ops = st.lists(
    st.one_of(
        st.just("fail"),
        st.just("ok"),
        st.just("acquire"),
        st.just("release"),
        st.floats(min_value=0, max_value=20).map(lambda t: ("tick", t)),
    ),
    max_size=80,
)


@settings(max_examples=300)
@given(ops, st.integers(1, 5), st.floats(0.1, 10), st.integers(1, 3))
def test_state_machine_invariants(
    script: list[object], threshold: int, recovery: float, probes: int
) -> None:
    """Model-based check: the breaker agrees with a reference model of the state machine."""
    b, clock = make(threshold, recovery, probes)
    state, failures, opened_at, inflight = "closed", 0, 0.0, 0
    for op in script:
        if isinstance(op, tuple):
            clock.advance(op[1])
            continue
        if state == "open" and clock.now() - opened_at >= recovery:
            state, inflight = "half", 0
        if op == "acquire":
            expected = state == "closed" or (state == "half" and inflight < probes)
            assert b.acquire() is expected
            if expected and state == "half":
                inflight += 1
        elif op == "release":
            b.release()
            if state == "half":
                inflight = max(0, inflight - 1)
        elif op == "ok":
            b.record_success()
            if state == "half":
                state, inflight = "closed", 0
            failures = 0 if state != "open" else failures
        elif op == "fail":
            b.record_failure()
            if state == "half":
                state, opened_at, failures, inflight = "open", clock.now(), 0, 0
            elif state == "closed":
                failures += 1
                if failures >= threshold:
                    state, opened_at, failures = "open", clock.now(), 0
        names = {
            "closed": BreakerState.CLOSED,
            "open": BreakerState.OPEN,
            "half": BreakerState.HALF_OPEN,
        }
        if state == "open" and clock.now() - opened_at >= recovery:
            state, inflight = "half", 0
        assert b.state is names[state]
        assert b.available() is (state == "closed" or (state == "half" and inflight < probes))


def test_trip_opens_for_the_time_given_then_half_open() -> None:
    b, clock = make(threshold=5, recovery=10.0)
    seen: list[tuple[BreakerState, BreakerState]] = []
    b.on_change(lambda old, new: seen.append((old, new)))
    assert b.open_for() == 0.0
    assert b.trip(3.0)
    assert b.state is BreakerState.OPEN and not b.available()
    assert b.open_for() == 3.0
    assert not b.trip(2.0)  # open for longer already
    clock.advance(3.0)
    assert b.state is BreakerState.HALF_OPEN
    assert seen == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
    ]
    assert not b.trip(0.0)
