"""The direct COPY of a batch whose records are all new: straight into the entity table.

No temp table and no INSERT .. SELECT: the typed columns are computed here, as the text
PostgreSQL's ``(doc #>> path)`` would give, and cast by COPY with the same input functions
the upsert's ``::type`` casts use. A value this module cannot render exactly (an object or
list in a non-jsonb column, a path through a list) sends the batch to the upsert instead.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from psycopg import sql

from common.paths import sql_path
from common.records import PreparedRecord
from common.spec import TableSpec
from tableinator import schema
from tableinator.copy_text import encode_key

_NULL = b"\\N"
_MISSING: Any = object()


class NotDirect(Exception):
    """A value the direct path cannot render as the upsert would: use the upsert."""


def copy_statement(db_schema: str, table: TableSpec) -> sql.Composed:
    names = [sql.Identifier(name) for name in ("key", "content_hash", "doc", *table.columns)]
    return sql.SQL("COPY {} ({}) FROM STDIN").format(
        schema.table_ident(db_schema, table), sql.SQL(", ").join(names)
    )


def encode_direct_rows(table: TableSpec, records: list[PreparedRecord]) -> bytes:
    """COPY text lines ``key, content_hash, doc, typed columns...``; NotDirect if a value
    cannot be rendered exactly as the upsert's casts see it."""
    # (top-level field or None, the path when nested, jsonb?)
    paths = [(c, sql_path(c.field)) for c in table.columns.values()]
    columns = [(None if len(path) > 1 else c.field, path, c.type == "jsonb") for c, path in paths]
    lines = []
    for record in records:
        head = b"%s\t\\\\x%s\t%s" % (
            encode_key(record.key),
            record.hash.hex().encode(),
            record.json.replace(b"\\", b"\\\\"),
        )
        if not columns:
            lines.append(head)
            continue
        try:
            doc = orjson.loads(record.json)
        except orjson.JSONDecodeError:
            raise NotDirect("record is not JSON") from None
        if not isinstance(doc, dict):
            raise NotDirect("record is not an object")
        fields = [head]
        for name, path, jsonb in columns:
            value = doc.get(name, _MISSING) if name is not None else _walk(doc, path)
            kind = type(value)
            if kind is str and not jsonb:  # the common cases first, inline
                fields.append(encode_key(value))
            elif kind is int and not jsonb:
                fields.append(b"%d" % value)
            else:
                fields.append(_field(value, jsonb))
        lines.append(b"\t".join(fields))
    lines.append(b"")
    return b"\n".join(lines)


def _walk(doc: Any, path: list[str]) -> Any:
    """The value at ``path`` as ``#>`` finds it: _MISSING where it finds nothing."""
    value = doc
    for part in path:
        if isinstance(value, dict):
            value = value.get(part, _MISSING)
            if value is _MISSING:
                return _MISSING
        elif isinstance(value, list) and part.isdigit():  # ``a[0]``: #> indexes arrays so
            index = int(part)
            if index >= len(value):
                return _MISSING
            value = value[index]
        elif isinstance(value, list):
            raise NotDirect("path through a list")  # by a name: left to PostgreSQL
        else:
            return _MISSING
    return value


def _field(value: Any, jsonb: bool) -> bytes:
    """One COPY text field: ``#>`` for a jsonb column, ``#>>`` for the others."""
    if value is _MISSING:
        return _NULL
    if jsonb:
        return orjson.dumps(value).replace(b"\\", b"\\\\")
    if value is None:
        return _NULL
    if isinstance(value, str):
        return encode_key(value)
    if value is True:
        return b"true"
    if value is False:
        return b"false"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return _numeric_text(value)
    raise NotDirect("object or list in a typed column")


def _numeric_text(value: float) -> bytes:
    """A JSON number as jsonb's numeric prints it: the document's digits, positional, and
    no negative zero."""
    number = Decimal(orjson.dumps(value).decode())
    if number.is_zero():
        number = abs(number)
    return format(number, "f").encode()
