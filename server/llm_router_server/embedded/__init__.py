"""The embedded local model: llama.cpp's HTTP server (from the ``xllamacpp`` wheel, the
``local`` extra) with a small GGUF model, run by the router as a supervised child process.

- ``settings.py``: the ``[embedded]`` table; how chains name the model (``api_base = "embedded"``).
- ``model.py``: where the GGUF file is, and its installation (``scripts/setup``).
- ``process.py``: ``EmbeddedServer``, the child's start, health checks, restarts and stop.
- ``child.py``: the child process itself (llama.cpp's server, standard library otherwise).

See ``docs/local-model.md``.
"""
