"""Hypothesis strategies shared by the test suite (one module, as Tahoe-LAFS keeps them)."""

from __future__ import annotations

from hypothesis import strategies as st

from halo_exchange.peg import PEG_SIZE, Fractions, PegLevel

MAX_MONEY = 2_000_000_000 * 100_000_000

values = st.integers(min_value=0, max_value=MAX_MONEY)
supplies = st.integers(min_value=0, max_value=PEG_SIZE - 1)


@st.composite
def sparse_vectors(draw, min_value: int = 0, max_value: int = 10**12, max_entries: int = 40) -> list[int]:
    """A 1200-entry vector with a few random non-zero entries (dense random vectors shrink badly)."""
    out = [0] * PEG_SIZE
    entries = draw(
        st.dictionaries(
            st.integers(0, PEG_SIZE - 1), st.integers(min_value, max_value), max_size=max_entries
        )
    )
    for index, value in entries.items():
        out[index] = value
    return out


@st.composite
def fractions(draw, allow_negative: bool = False) -> Fractions:
    """Either the standard split of a value or a sparse vector (negatives only when asked)."""
    if draw(st.booleans()):
        return Fractions.std(draw(values))
    low = -(10**12) if allow_negative else 0
    return Fractions(draw(sparse_vectors(min_value=low)))


@st.composite
def levels(draw) -> PegLevel:
    """A valid plain (unshifted) level."""
    return PegLevel(
        draw(st.integers(0, 10**6)),
        draw(st.integers(0, 10**6)),
        draw(st.integers(0, 5)),
        draw(supplies),
        draw(supplies),
        draw(supplies),
    )
