"""A circuit breaker for one replica: closed → open → half-open → closed.

Closed: calls flow; ``failure_threshold`` consecutive failures open it.
Open: calls are refused until ``recovery`` seconds have passed, then it is half-open.
Half-open: at most ``half_open_max`` probe calls in flight; a success closes it, a failure
re-opens it for another ``recovery``.

``hold(seconds)`` keeps calls off a replica for a while without counting a failure: an
upstream that answered 429 with ``Retry-After``.

Only failures that are the replica's fault are recorded (timeouts, connection errors, 5xx,
malformed answers); the caller's 4xx is recorded as a success of the replica.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from failwell.clock import SYSTEM_CLOCK, Clock


class BreakerState(enum.IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


# The members by name: in CPython 3.11 each read of ``BreakerState.CLOSED`` goes through the
# slow attribute hook of EnumType's ``__getattr__``, and the closed fast paths run per call.
CLOSED, HALF_OPEN, OPEN = BreakerState.CLOSED, BreakerState.HALF_OPEN, BreakerState.OPEN

Listener = Callable[[BreakerState, BreakerState], None]


class Breaker:
    __slots__ = (
        "_clock",
        "_failures",
        "_held_until",
        "_listeners",
        "_opened_at",
        "_probes",
        "_state",
        "failure_threshold",
        "half_open_max",
        "recovery",
    )

    def __init__(
        self,
        failure_threshold: int = 5,
        recovery: float = 10.0,
        half_open_max: int = 1,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.recovery = recovery
        self.half_open_max = half_open_max
        self._clock = clock
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probes = 0
        self._held_until = 0.0
        self._listeners: list[Listener] = []

    def __repr__(self) -> str:
        return f"<Breaker {self.state.name} failures={self._failures} probes={self._probes}>"

    def on_change(self, listener: Listener) -> None:
        self._listeners.append(listener)

    @property
    def state(self) -> BreakerState:
        """The state now; an open breaker whose recovery time has passed reads half-open."""
        if self._state is OPEN and self._clock.now() - self._opened_at >= self.recovery:
            self._move(HALF_OPEN)
        return self._state

    def hold(self, seconds: float) -> None:
        """Refuse calls for ``seconds`` (the replica asked for time); not a failure."""
        self._held_until = max(self._held_until, self._clock.now() + seconds)

    def held(self) -> bool:
        if not self._held_until:
            return False
        if self._clock.now() < self._held_until:
            return True
        self._held_until = 0.0  # over: the closed fast paths skip the clock again
        return False

    def available(self) -> bool:
        """Would ``acquire`` succeed now? Does not take a probe slot."""
        if self._state is CLOSED and not self._held_until:
            return True  # the common case, with no clock read
        if self.held():
            return False
        state = self.state
        if state is CLOSED:
            return True
        return state is HALF_OPEN and self._probes < self.half_open_max

    def acquire(self) -> bool:
        """Ask to make a call. In half-open this takes one probe slot; pair with ``release``."""
        if self._state is CLOSED and not self._held_until:
            return True
        if self.held():
            return False
        state = self.state
        if state is CLOSED:
            return True
        if state is HALF_OPEN and self._probes < self.half_open_max:
            self._probes += 1
            return True
        return False

    def record_success(self) -> None:
        if self._state is CLOSED:
            self._failures = 0
            return
        if self.state is HALF_OPEN:
            self._probes = max(0, self._probes - 1)
            self._move(CLOSED)
        self._failures = 0

    def record_failure(self) -> None:
        if self.state is HALF_OPEN:
            self._probes = max(0, self._probes - 1)
            self._open()
            return
        if self._state is OPEN:
            return
        self._failures += 1
        if self._failures >= self.failure_threshold:
            self._open()

    def open_for(self) -> float:
        """Seconds until an open breaker reads half-open; 0 when it is not open."""
        if self.state is not OPEN:
            return 0.0
        return self.recovery - (self._clock.now() - self._opened_at)

    def trip(self, seconds: float) -> bool:
        """Open now for ``seconds`` (another instance saw this replica fail), unless it is
        open for longer already; True if that changed anything. Listeners hear a move to open
        as for a local one."""
        if seconds <= 0 or self.open_for() >= seconds:
            return False
        self._open()
        self._opened_at = self._clock.now() + seconds - self.recovery
        return True

    def release(self) -> None:
        """Give back a probe slot for a call that ended without a verdict (e.g. cancelled)."""
        if self._state is HALF_OPEN:
            self._probes = max(0, self._probes - 1)

    def _open(self) -> None:
        self._opened_at = self._clock.now()
        self._failures = 0
        self._probes = 0
        self._move(OPEN)

    def _move(self, new: BreakerState) -> None:
        old = self._state
        if old is new:
            return
        self._state = new
        if new is not HALF_OPEN:
            self._probes = 0
        for listener in self._listeners:
            listener(old, new)
