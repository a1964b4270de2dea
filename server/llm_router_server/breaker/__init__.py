"""The circuit breaker: pure rules, the breaker, and its store seam (in-memory and Redis)."""
