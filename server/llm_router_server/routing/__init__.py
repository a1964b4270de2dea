"""The fallback chain: the loop over models (``chain.py``, one call's state in ``call.py``),
judging answers, request limits, hedging, concurrency limits and warm-up. Imports neither
grpc nor litellm nor redis."""
