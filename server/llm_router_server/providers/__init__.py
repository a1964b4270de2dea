"""Model providers: the ``Provider`` seam and its implementations.

- ``base.py``: the ``Provider`` protocol the chain calls.
- ``dispatch.py``: ``DispatchProvider``, the server's provider: native path or litellm, per model.
- ``http_provider.py``: ``AiohttpProvider``, the native path's calls: ``transport.py`` for
  plain ``http://`` upstreams, aiohttp for the others.
- ``transport.py``, ``http11.py``: the router's own small HTTP/1.1 client and its answer parser.
- ``protocols.py``: which model strings are native; the registry of wire protocols.
- ``ollama.py``, ``anthropic.py``, ``openai.py``: one wire protocol each (endpoint, body, answer).
- ``shaping.py``: what both paths send and how both judge an answer.
- ``reasons.py``: the failure reasons and HTTP error classes both paths raise.
- ``litellm_provider.py``: ``LiteLLMProvider``, the only module that imports litellm.
"""
