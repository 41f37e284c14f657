"""The results API's request and response models, built from the schema registry
(one row model per refined table), and the ``GET /tables`` body."""

from __future__ import annotations

import json
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, create_model

from covidlake.schemas import REFINED_TABLES, ColumnType

TABLE_NAMES = list(REFINED_TABLES)
MAX_LIMIT = 1000  # rows per response: more than any refined table holds


class ShowResultsRequest(BaseModel):
    """Body of POST /showResults. Types are strict: "5" is not a limit, 5 is not a table."""

    model_config = ConfigDict(extra="forbid")

    table: StrictStr = Field(
        description="a refined table name",
        json_schema_extra={"enum": TABLE_NAMES},
        examples=["continent_stats"],
    )
    limit: StrictInt | None = Field(None, ge=1, le=MAX_LIMIT, description="at most this many rows")


_PY_TYPES = {
    ColumnType.STRING: str,
    ColumnType.DOUBLE: float,
    ColumnType.BIGINT: int,
    ColumnType.INT: int,
    ColumnType.DATE: str,
}


def _row_model(name: str) -> type[BaseModel]:
    schema = REFINED_TABLES[name]
    fields: dict[str, Any] = {
        c.name: (_PY_TYPES[c.type] | None, Field(..., description=c.description or None)) for c in schema.columns
    }
    title = "".join(part.title() for part in name.split("_")) + "Row"
    return create_model(title, __config__=ConfigDict(extra="forbid", title=title), **fields)


ROW_MODELS: dict[str, type[BaseModel]] = {name: _row_model(name) for name in REFINED_TABLES}
# One row of any refined table; a response holds rows of the requested table only.
AnyRow = Union[tuple(ROW_MODELS.values())]  # type: ignore[valid-type]  # noqa: UP007 (a union built at run time from a tuple has no X | Y spelling)


class ColumnInfo(BaseModel):
    name: str
    type: Literal["string", "double", "bigint", "int", "date"]
    json_type: Literal["string", "number", "integer"]


class TableInfo(BaseModel):
    name: str
    description: str
    columns: list[ColumnInfo]


class ErrorBody(BaseModel):
    statusCode: int
    message: str


class UnknownTableBody(ErrorBody):
    valid_tables: list[str]


class BackendErrorBody(ErrorBody):
    query_id: str | None = None
    request_id: str | None = None


class ValidationItem(BaseModel):
    loc: list[str | int]
    type: str
    msg: str


class ValidationErrorBody(ErrorBody):
    detail: list[ValidationItem]


def json_content(model: Any) -> dict:
    return {"application/json": {"model": model}}


SHOW_RESULTS_RESPONSES: dict[int, dict] = {
    200: {
        "description": "the table's rows in its natural order, values typed by the schema",
        "content": json_content(list[AnyRow]),
    },
    400: {
        "description": "invalid JSON, a body that is not an object, or an unknown table",
        "content": json_content(UnknownTableBody | ErrorBody),
    },
    422: {
        "description": "wrong types, missing or unknown fields, limit out of range",
        "content": json_content(ValidationErrorBody),
    },
    502: {"description": "the query engine failed", "content": json_content(BackendErrorBody)},
    504: {"description": "the query did not finish in time", "content": json_content(BackendErrorBody)},
}


def tables() -> list[dict[str, Any]]:
    return [
        {
            "name": t.name,
            "description": t.description,
            "columns": [{"name": c.name, "type": c.type.value, "json_type": c.type.json_type} for c in t.columns],
        }
        for t in REFINED_TABLES.values()
    ]


TABLES_BODY = json.dumps(tables(), separators=(",", ":"))


OPENAPI_INFO = {
    "title": "covidlake results API",
    "version": "1.0.0",
    "description": "Refined COVID-19 tables of the covidlake pipeline, served from Athena or DuckDB.",
}
