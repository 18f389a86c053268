//! Benchmarks only: see `benches/` (criterion targets) and `runs/` (end-to-end timings).
