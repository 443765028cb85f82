"""Packages whose public names load on first use, so `import headstart` (and the CLI's --help) imports no torch."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_names(package: str, public: dict[str, str]) -> Callable[[str], Any]:
    """A module-level __getattr__ for `package`: public name -> the submodule that defines it (relative to the package,
    or absolute when it starts with `headstart.`)."""

    def __getattr__(name: str) -> Any:
        if name in public:
            module = public[name]
            return getattr(import_module(module if module.startswith("headstart.") else f".{module}", package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
