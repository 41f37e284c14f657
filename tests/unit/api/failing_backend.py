"""A query backend whose every fetch raises the error it was given: the API's 502/504 paths."""

from __future__ import annotations


class Failing:
    def __init__(self, exc):
        self.exc = exc

    def version(self):
        return "v1"

    def fetch(self, table, limit=None):
        raise self.exc
