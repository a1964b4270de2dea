"""llm-router server: a gRPC service that answers through a local-first fallback chain."""
