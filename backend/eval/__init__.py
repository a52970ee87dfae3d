"""Evaluation and benchmarks (issue 9): weight-free metrics, baselines, report, `gid eval`, `gid bench`."""
