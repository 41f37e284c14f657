"""Every error the pipeline raises on purpose, in one place.

Each names what was wrong and where in its message; the CLI turns them into a non-zero exit
with that message, the API into a 4xx/5xx body. Library code raises these; handlers map them.
"""

from __future__ import annotations


class SourceError(RuntimeError):
    """A source could not be captured; the message says which and why."""


class SchemaError(ValueError):
    """An input does not have the columns its table needs."""


class QualityError(RuntimeError):
    """Too many rows of an input failed the quality rules; nothing was published."""


class LakeAccessDenied(PermissionError):
    """The lake refused a request (S3 403): a missing IAM permission, named in the message."""


class RunInProgress(RuntimeError):
    """Another run holds the lake."""


class JobCodeMissing(RuntimeError):
    """The Spark jobs are not uploaded where the plan points EMR."""


class QueryError(RuntimeError):
    """The backend failed to answer (HTTP 502)."""

    def __init__(self, message: str, query_id: str | None = None):
        super().__init__(message)
        self.message = message
        self.query_id = query_id


class QueryTimeout(QueryError):
    """The query did not finish within its time budget (HTTP 504)."""


class TableNotPublished(QueryError):
    """The table is in the registry but the lake holds no data for it yet."""
