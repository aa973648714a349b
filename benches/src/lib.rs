//! Benchmarks live in `benches/` and `src/bin/`; see RESULTS.md.
