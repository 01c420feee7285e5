"""Run a function right after a module is first imported: `autolog()` turns a deep-learning
framework on when the script imports it, without importing it itself (torch and its kin take
seconds to import, and a script may have them installed without using them)."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

_lock = threading.Lock()


class _Finder(importlib.abc.MetaPathFinder):
    """First on sys.meta_path; answers only for the modules it waits for, with the spec the
    other finders give, whose loader calls the hook once the module has executed."""

    def __init__(self) -> None:
        self.waiting: dict[str, Callable[[], None]] = {}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        with _lock:
            hook = self.waiting.pop(fullname, None)
        if hook is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader: Any = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec  # nothing to run it after (a namespace package): not one of ours
        original = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            # on the loader instance (one per module), so the module keeps its own loader
            del loader.exec_module
            original(module)
            hook()

        loader.exec_module = exec_module
        return spec


_finder = _Finder()


def when_imported(name: str, hook: Callable[[], None]) -> None:
    """Call `hook` now if `name` is imported, else right after its first import."""
    if name in sys.modules:
        hook()
        return
    with _lock:
        _finder.waiting[name] = hook
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)


def forget(name: str) -> None:
    with _lock:
        _finder.waiting.pop(name, None)
