"""Package attributes loaded on first use (PEP 562): importing a package costs nothing more.

Example:
    >>> get, names = lazy_attributes("json", {"loads": "json.decoder"}, ["loads"])
    >>> names()
    ['loads']
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_attributes(
    package: str, homes: Mapping[str, str], public: Iterable[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` for ``package``: ``homes`` maps each name to the
    module (relative to ``package``) that defines it; the first use imports it and keeps it."""
    names = sorted(public)

    def load(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home, package), name)
        setattr(sys.modules[package], name, value)
        return value

    return load, lambda: names
