"""Objects kept for the life of a Lambda container (execution environment)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

_caches: list[Any] = []  # functools.cache wrappers


def per_container[**P, T](factory: Callable[P, T]) -> Callable[P, T]:
    """Cache a factory for the life of the container: settings, AWS clients and what is built on them.

    `reset()` clears every such cache (tests change the environment between cases).
    """
    cached = functools.cache(factory)
    _caches.append(cached)
    return cached  # type: ignore[return-value]


def reset() -> None:
    """Forget every per-container value, so the next use reads the environment again."""
    for cached in _caches:
        cached.cache_clear()
