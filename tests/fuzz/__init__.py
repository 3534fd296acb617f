"""A seeded fuzz of both listeners of a real `halo-exchange devnet` (issue 14): see :mod:`tests.fuzz.fuzzer`."""
