"""A hypothesis strategy for arbitrary JSON values, shared by the malformed-input tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st


def any_json(
    text: st.SearchStrategy[str], *, max_size: int, max_leaves: int
) -> st.SearchStrategy[Any]:
    """Any JSON value: null, booleans, integers, finite floats and ``text``, nested in lists and
    objects (keys from ``text``) of at most ``max_size`` items."""
    return st.recursive(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(allow_nan=False, allow_infinity=False),
            text,
        ),
        lambda children: st.one_of(
            st.lists(children, max_size=max_size),
            st.dictionaries(text, children, max_size=max_size),
        ),
        max_leaves=max_leaves,
    )
