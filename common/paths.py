"""Field paths into records: ``a.b.c``, list indexes ``a[0].b`` and every item ``a[*].c``.

A path is parsed and compiled once (the spec's validation does it on load) into a getter;
a plain name or dotted path keeps the plain dict lookups. ``[*]`` gives a list, one value
per item (items that lack the rest of the path are left out; a ``[*]`` inside another's
items flattens into one list); ``[N]`` indexes a list. A missing step gives the default,
as a missing field does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

NAME = r"[A-Za-z_@#][\w@#-]*"
INDEX = r"\[(?:\*|\d+)\]"
PATH = re.compile(rf"^{NAME}(?:{INDEX})*(?:\.{NAME}(?:{INDEX})*)*$")
STEP = re.compile(rf"({NAME})|\[(\*|\d+)\]")
EVERY = "*"  # the step of ``[*]``; a name step is never ``*`` (NAME does not allow it)
MISSING: Any = object()

Step = str | int
Getter = Callable[[Any], Any]  # the value, or MISSING


@lru_cache(maxsize=4096)
def parse_path(path: str) -> tuple[Step, ...]:
    """The steps of a path: names, list indexes, and ``EVERY`` for ``[*]``."""
    if not PATH.match(path):
        raise ValueError(f"{path!r} is not a field path (a.b, a[0].b or a[*].b)")
    return tuple(
        name or (EVERY if index == "*" else int(index)) for name, index in STEP.findall(path)
    )


def has_every(path: str) -> bool:
    """Whether the path picks many values (``[*]``)."""
    return "[*]" in path


def sql_path(path: str) -> list[str]:
    """The path as PostgreSQL's ``#>`` takes it (``{a,0,b}``); a ``[*]`` has no such form."""
    steps = parse_path(path)
    if EVERY in steps:
        raise ValueError(f"{path!r}: [*] picks many values, a column holds one")
    return [str(step) for step in steps]


@lru_cache(maxsize=4096)
def compile_path(path: str) -> Getter:
    """A getter for ``path``: record -> value or MISSING."""
    steps = parse_path(path)
    if len(steps) == 1 and isinstance(steps[0], str):
        return _name_getter(steps[0])
    if all(isinstance(step, str) and step != EVERY for step in steps):
        return _dotted_getter(tuple(str(step) for step in steps))
    return _general_getter(steps)


def _name_getter(name: str) -> Getter:
    def get(record: Any) -> Any:
        return record.get(name, MISSING) if isinstance(record, dict) else MISSING

    return get


def _dotted_getter(names: tuple[str, ...]) -> Getter:
    def get(record: Any) -> Any:
        value = record
        for name in names:
            if not isinstance(value, dict):
                return MISSING
            value = value.get(name, MISSING)
            if value is MISSING:
                return MISSING
        return value

    return get


def _general_getter(steps: tuple[Step, ...]) -> Getter:
    def get(record: Any) -> Any:
        return _walk(record, steps, 0)

    return get


def _walk(value: Any, steps: tuple[Step, ...], start: int) -> Any:
    for at in range(start, len(steps)):
        step = steps[at]
        if step == EVERY:
            if not isinstance(value, list):
                return MISSING
            return _every(value, steps, at + 1)
        if isinstance(step, int):
            if not isinstance(value, list) or step >= len(value):
                return MISSING
            value = value[step]
        elif isinstance(value, dict):
            value = value.get(step, MISSING)
            if value is MISSING:
                return MISSING
        else:
            return MISSING
    return value


def _every(items: list[Any], steps: tuple[Step, ...], start: int) -> list[Any]:
    """The rest of the path in every item; a later ``[*]``'s lists are flattened in."""
    nested = EVERY in steps[start:]
    found: list[Any] = []
    for item in items:
        value = _walk(item, steps, start)
        if value is MISSING:
            continue
        if nested:
            found.extend(value)
        else:
            found.append(value)
    return found


def compiled(path: str) -> str:
    """A spec validator: the path, parsed and compiled now (its getter is cached)."""
    compile_path(path)
    return path


def one_value(path: str) -> str:
    """A spec validator: refuse ``[*]`` where one value is needed."""
    if has_every(path):
        raise ValueError(f"{path!r}: [*] picks many values; this field needs one")
    return path


def get_value(record: Any, path: str, default: Any = None) -> Any:
    """The value at ``path`` in ``record``, or ``default``."""
    value = compile_path(path)(record)
    return default if value is MISSING else value


def flat(values: list[Any]) -> list[Any]:
    """One list of the values, the lists among them spliced in (``[*]`` over lists)."""
    if not any(isinstance(value, list) for value in values):
        return values
    found: list[Any] = []
    for value in values:
        if isinstance(value, list):
            found.extend(value)
        else:
            found.append(value)
    return found


def list_at(body: Any, path: str) -> Any:
    """The value at ``path``; with ``[*]``, the items' lists flattened into one."""
    value = get_value(body, path)
    return flat(value) if has_every(path) and isinstance(value, list) else value
