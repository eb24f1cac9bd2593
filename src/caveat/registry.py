"""One registry type for every choice made by name (objectives, readers, methods, ...)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from caveat.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; ``register`` twice under one name raises.

    Examples
    --------
    >>> objectives = Registry("objective")
    >>> @objectives.register("erm")
    ... class ERM: ...
    >>> objectives.get("erm") is ERM
    True
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
