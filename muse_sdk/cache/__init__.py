"""The response cache: opt-in with ``cache="memory"``, ``cache="sqlite:PATH"`` or any store.

A store follows the small :class:`Cache` protocol (``get``/``set`` of JSON text under string
keys); :func:`cache_from` turns a ``cache=`` option into one.
"""

from __future__ import annotations

from muse_sdk.cache._stores import Cache, MemoryCache, SQLiteCache, cache_from

__all__ = ["Cache", "MemoryCache", "SQLiteCache", "cache_from"]
