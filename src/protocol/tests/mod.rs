//! Tests of the protocol core: hand-built vectors from the spec, error
//! texts, a seeded round-trip property test, and a robustness run over a
//! million random and mutated inputs per decoder.

mod errors;
mod robustness;
mod roundtrip;
mod support;
mod vectors;
