"""Runtime profiler: per-request queries, N+1 detection, slow-query logs, metrics."""
