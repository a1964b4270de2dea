"""The tracing tests' fixture (``traced``) lives beside its helpers in ``servers.py``."""

from tests.tracing.servers import traced

__all__ = ["traced"]
