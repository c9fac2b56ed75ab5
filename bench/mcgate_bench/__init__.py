"""mcgate's benchmark: `lab` builds and drives the lab and the kernel baselines,
`measure` runs the probes and cases, `fold` turns runs into figures and verdicts,
`render` writes BENCHMARKS.md. `scripts/bench` drives them."""
