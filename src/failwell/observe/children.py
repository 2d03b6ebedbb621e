"""Labelled children looked up once: prometheus_client's ``labels()`` checks its arguments and
takes a lock on every call, so the request path keeps the children it has used in a dict."""

from __future__ import annotations

from typing import TypeVar

from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)


class Children:
    __slots__ = ("_children",)

    def __init__(self) -> None:
        self._children: dict[tuple[str, ...], MetricWrapperBase] = {}

    def __call__(self, metric: M, *labels: str) -> M:
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child  # type: ignore[return-value]  # a child is of its parent's class

    def forget(self, metric: MetricWrapperBase, *labels: str) -> None:
        """Drop a child removed from ``metric`` (``metric.remove(*labels)``)."""
        self._children.pop((metric._name, *labels), None)
