"""The fallback chain: the loop over models, judging answers, request limits, hedging,
concurrency limits and warm-up. Imports neither grpc nor litellm nor redis."""
