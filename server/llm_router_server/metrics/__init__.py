"""Metrics: the bus seam, counters, the in-memory and Redis buses, Prometheus."""
