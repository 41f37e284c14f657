"""Results per table and refined-data version (the content of ``refined/_version.json``,
written by analytics after it publishes), so repeated requests do not query again until
the pipeline publishes new data."""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from covidlake.query.base import QueryBackend


@dataclass
class CachedTable:
    version: str
    rows: list[dict[str, Any]]
    bodies: dict[int | None, str]


class CachedResults:
    """Results per table and refined-data version, with their JSON bodies.

    The whole table is fetched once per version (refined tables are small) and a
    ``limit`` is applied in memory; the serialized body of each (table, limit) is kept
    too, so a cached request costs a dict lookup. Without a version (nothing published
    yet, or no ``_version.json``) nothing is cached.
    """

    def __init__(self, backend: QueryBackend, version_check_seconds: float = 0.0, clock=time.monotonic):
        self.backend = backend
        self.version_check_seconds = version_check_seconds
        self._clock = clock
        self._tables: dict[str, CachedTable] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._version: str | None = None
        self._version_read_at = -math.inf
        self.queries = 0  # how many times the backend was asked (for tests and metrics)

    def current_version(self) -> str | None:
        now = self._clock()
        if now - self._version_read_at >= self.version_check_seconds or self._version is None:
            self._version = self.backend.version()
            self._version_read_at = now
        return self._version

    def _lock(self, table: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(table, threading.Lock())

    def _table(self, table: str) -> tuple[CachedTable, bool]:
        version = self.current_version()
        cached = self._tables.get(table)
        if version is not None and cached is not None and cached.version == version:
            return cached, True
        with self._lock(table):  # one query per table and version, however many callers
            cached = self._tables.get(table)
            if version is not None and cached is not None and cached.version == version:
                return cached, True
            self.queries += 1
            rows = self.backend.fetch(table)
            fresh = CachedTable(version or "", rows, {})
            if version is not None:
                self._tables[table] = fresh
            return fresh, False

    def body(self, table: str, limit: int | None = None) -> tuple[str, bool]:
        """The JSON array for (table, limit) and whether it came from the cache."""
        cached, hit = self._table(table)
        body = cached.bodies.get(limit)
        if body is None:
            rows = cached.rows if limit is None else cached.rows[:limit]
            body = json.dumps(rows, separators=(",", ":"), allow_nan=False)
            cached.bodies[limit] = body
        return body, hit
