"""Ready-made real models and real text for examples, tests and benchmarks (all offline)."""
