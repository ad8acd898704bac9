"""Metric attributes that read the options of the metric's task: ``metric.average`` is ``metric.task.average``."""

from __future__ import annotations

import dataclasses
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class OptionAttribute(Generic[T]):
    """A metric attribute that reads (and writes) the field of the same name of ``metric.task``.

    The task is one frozen object, its options checked once; setting the attribute replaces it with a
    copy that holds the new value (checked again). That is how a class weight moves with the metric:
    ``.to(device)`` sets ``metric.weight`` to the moved tensor.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, metric: None, owner: type | None = None) -> OptionAttribute[T]: ...

    @overload
    def __get__(self, metric: object, owner: type | None = None) -> T: ...

    def __get__(self, metric: object, owner: type | None = None) -> Any:
        return self if metric is None else getattr(metric.task, self.name)  # type: ignore[attr-defined]

    def __set__(self, metric: Any, value: T) -> None:
        metric.task = dataclasses.replace(metric.task, **{self.name: value})
