"""One registry type for every choice made by name (objectives, readers, methods, ...)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Generic, TypeVar

from caveat.errors import ConfigError, RenamedWarning

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; ``register`` twice under one name raises.

    A renamed entry keeps its old name for one release through ``alias``: ``resolve`` (and so ``get``)
    maps the old name to the new one with a ``RenamedWarning`` (a ``DeprecationWarning``).

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
        self._aliases: dict[str, str] = {}  # deprecated name -> current name

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return add

    def alias(self, old: str, new: str) -> None:
        """Accept ``old`` as a deprecated name of the registered ``new`` until the next release."""
        if old in self._items or old in self._aliases:
            raise ValueError(f"{self.kind} {old!r} is already registered")
        if new not in self._items:
            raise ValueError(f"{self.kind} {new!r} is not registered, so {old!r} cannot stand for it")
        self._aliases[old] = new

    def resolve(self, name: str, *, stacklevel: int = 1) -> str:
        """The current name for ``name``: itself, or, for a deprecated alias, the name it now has, with a
        ``DeprecationWarning`` attributed as ``warnings.warn(stacklevel=...)`` would be from the function
        calling ``resolve`` (1: the line calling it; 2: that function's caller)."""
        new = self._aliases.get(name) if isinstance(name, str) else None
        if new is None:
            return name
        warnings.warn(
            f"{self.kind} {name!r} is now called {new!r}; the old name will be removed in the next release",
            RenamedWarning,
            stacklevel=stacklevel + 1,
        )
        return new

    def get(self, name: str) -> T:
        name = self.resolve(name, stacklevel=2)
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        """The current names (deprecated aliases are left out)."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
