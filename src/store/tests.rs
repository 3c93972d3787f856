//! Unit tests of the store: the writer against a store that fails on demand.
