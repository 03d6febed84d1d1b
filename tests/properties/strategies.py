"""Hypothesis strategies shared by the property tests: JSON values as orjson reads them."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
# Any text JSON can carry: every code point except lone surrogates (orjson refuses those).
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
SCALARS = (
    st.none() | st.booleans() | INT64 | st.floats(allow_nan=False, allow_infinity=False) | TEXT
)

JSON: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=20,
)
RECORD: st.SearchStrategy[dict[str, Any]] = st.dictionaries(TEXT, JSON, max_size=6)
