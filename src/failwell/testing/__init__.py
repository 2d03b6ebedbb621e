"""Test seams shipped for users and for failwell's own unit tests."""

from failwell.testing.fakes import FakeAdapter, FakeClock

__all__ = ["FakeAdapter", "FakeClock"]
