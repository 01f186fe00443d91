"""Load tests against a running server (perf_analyzer)."""
