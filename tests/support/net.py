"""Small network helpers for tests: a free port, a blocking JSON POST."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on (closed again before returning).

    Another process may take it before the caller binds it; good enough for tests
    that need a port to start a server on, or a port where connections are refused.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def post_json(url: str, body: Any, timeout: float = 5.0) -> tuple[int, str]:
    """A blocking POST of ``body`` as JSON: the reply's status and text (an HTTP error
    status too). The calling thread, and its event loop, wait for the answer."""
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
