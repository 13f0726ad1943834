//! Criterion benches for Cloakroom live beside this file as `[[bench]]` targets;
//! `load/` holds the end-to-end load benchmark. Run them with
//! `cargo bench -p cloakroom-benches --bench <name>`; figures go to docs/performance.md.
#![warn(missing_docs)]
