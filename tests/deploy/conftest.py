"""The shared fixtures this folder uses (tests/support/apps.py)."""

from tests.support.apps import pki, secure_serve, start_app

__all__ = ["pki", "secure_serve", "start_app"]
