"""The circuit breaker: ``rules.py`` (pure rules over plain data), ``breaker.py`` (the
``CircuitBreaker`` applying them per model), ``store.py`` (the ``BreakerStore`` seam and the
in-memory store) and ``redis_store.py`` (circuits shared by replicas through Redis)."""
