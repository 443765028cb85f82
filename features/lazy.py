"""Packages whose public names load on first use, so `import features` (and the CLI's --help) imports no torch."""

from __future__ import annotations

from importlib import import_module
from typing import Any, Callable


def lazy_names(package: str, public: dict[str, str]) -> Callable[[str], Any]:
    """A module-level __getattr__ for `package`: public name -> the submodule (relative to it) that defines it."""

    def __getattr__(name: str) -> Any:
        if name in public:
            return getattr(import_module(f".{public[name]}", package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
