"""Checking a caller's schema and judging a model's answer without ever holding the event loop.

Both the schema (the caller's) and the answer (the model's, which the prompt can steer) are
untrusted, and JSON Schema validation in Python has no time bound (a backtracking ``pattern``,
a ``$ref`` fan-out, a quadratic ``uniqueItems``). So:

- ``answers.py``: parsing an answer safely, and what makes parsed content deliverable
  (protobuf-encodable: no lone surrogates, finite numbers, bounded nesting);
- ``schemas.py``: checking and compiling a schema (dialect, meta-schema, every ``$ref`` /
  ``$dynamicRef`` local and resolvable, a bounded ``$ref`` expansion) and classifying it as
  cheap enough to apply on the event loop or not;
- ``pool.py``: a small pool of worker processes that can be killed when a task runs out of
  its time budget, and replaced;
- ``worker.py``: the worker process's side;
- ``offload.py``: ``Validation``, which decides per schema and per answer whether the work runs
  inline (provably cheap) or in a worker under a budget, and caches compiled schemas by bytes.

Measurements and the reasons for this design: docs/validation.md.
"""
