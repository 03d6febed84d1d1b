"""Detail entities of a spec: an entity with ``parent:`` is not paged or sliced itself; each
record of its parent's pages is fetched again by one field (``/items/{id}.json``) within the
parent's slices (``extractor.sources.details``). One detail entity per parent, one level deep.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # common.spec imports this module to validate with it
    from common.spec import DatasetSpec, EntitySpec, ParentSpec

PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def placeholder(parent: ParentSpec) -> str:
    """``{id}`` for field ``id`` (``{userid}`` for ``player.userid``)."""
    return "{" + parent.field.rsplit(".", 1)[-1] + "}"


def sliced_entities(spec: DatasetSpec) -> list[str]:
    """The entities a job plans slices for (a detail entity rides on its parent's)."""
    return [name for name, entity in spec.entities.items() if entity.parent is None]


def detail_of(spec: DatasetSpec, parent: str) -> str | None:
    """The detail entity fetched for each record of ``parent``, if there is one."""
    for name, entity in spec.entities.items():
        if entity.parent is not None and entity.parent.entity == parent:
            return name
    return None


def check_detail(spec: DatasetSpec, name: str, entity: EntitySpec) -> None:
    """A detail entity: of an existing, paged parent of an http source; one {field} path.
    Raises ValueError naming the field (``entities.<name>.parent.entity: ...``)."""
    assert entity.parent is not None
    where, parent = f"entities.{name}", entity.parent.entity
    if spec.source.kind != "http":
        raise ValueError(f"{where}.parent: detail entities need an http source")
    if parent not in spec.entities or parent == name:
        raise ValueError(f"{where}.parent.entity: no entity {parent!r} to be the parent")
    if spec.entities[parent].parent is not None:
        raise ValueError(f"{where}.parent.entity: {parent!r} is itself a detail entity")
    other = detail_of(spec, parent)
    if other != name:
        raise ValueError(f"{where}.parent.entity: {parent!r} already has detail entity {other!r}")
    for field in ("paginator", "estimate"):
        if getattr(entity, field) is not None:
            raise ValueError(f"{where}.{field}: a detail entity is fetched by its parent's pages")
    wanted = placeholder(entity.parent)
    if PLACEHOLDER.findall(entity.path) != [wanted]:
        raise ValueError(
            f"{where}.path: must hold {wanted} (from parent.field {entity.parent.field})"
            f" once and no other placeholder, got {entity.path!r}"
        )
