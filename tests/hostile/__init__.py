"""Hostile input: callers and models that try to stall, crash or leak."""
