"""mcgate's benchmark: `measure` runs the cases, `fold` turns runs into figures and
verdicts, `render` writes BENCHMARKS.md. `scripts/bench` drives them."""
