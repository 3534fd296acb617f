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


# -- ledger book operations -------------------------------------------------------------------------------

book_operations = st.one_of(
    st.tuples(st.just("credit"), st.integers(0, 5), st.integers(0, 10**12)),
    st.tuples(st.just("liquid"), st.integers(0, 5), st.integers(0, 5), st.integers(0, 10**12)),
    st.tuples(st.just("reserve"), st.integers(0, 5), st.integers(0, 5), st.integers(0, 10**12)),
    st.tuples(st.just("cycle"), st.integers(-3, 3)),
    st.tuples(st.just("debit"), st.integers(0, 5), st.integers(0, 10**10)),
)


def apply_book_operation(book, op) -> dict[str, int]:
    """Apply one drawn operation to a ledger Book; return how it changed account values.

    A refused operation raises LedgerError (and, as the book guarantees, changes nothing).
    """
    kind = op[0]
    if kind == "credit":
        book.credit(f"user{op[1]}", Fractions.std(op[2]))
        return {f"user{op[1]}": op[2]}
    if kind in ("liquid", "reserve"):
        src, dst = f"user{op[1]}", f"user{op[2]}"
        (book.move_liquid if kind == "liquid" else book.move_reserve)(src, dst, op[3])
        return {} if src == dst else {src: -op[3], dst: op[3]}
    if kind == "cycle":
        book.new_cycle(book.cycle + 1, max(0, min(PEG_SIZE - 1, book.supply + op[1])))
        return {}
    book.debit_liquid(f"user{op[1]}", op[2])
    return {f"user{op[1]}": -op[2]}
