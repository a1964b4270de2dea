"""The metrics HTTP port: Prometheus ``/metrics`` and the live page.

Serves, on ``metrics.prometheus_listen`` (no authentication: keep it private):

- ``GET /metrics``: the Prometheus registry (text format, or OpenMetrics when asked),
  rendered in a worker thread so a scrape never holds up the event loop;
- ``GET /``: the live page (``static/dashboard.html`` with its script and style): per
  model calls, fallbacks, p50/p95, circuit state, local or cloud, and the last calls
  with their attempts;
- ``GET /feed``: the page's data, the ``LiveFeed`` messages as server-sent events
  (``text/event-stream``, one JSON object per ``data:`` line; a snapshot at least every
  second keeps the stream alive).

The page is static and builds its DOM with ``textContent`` only: model names, contexts
and reasons are shown as text, never parsed as HTML; a Content-Security-Policy allows
only the page's own script, style and feed. At most ``MAX_FEEDS`` pages are followed at
once (more get 503), each with its own bounded queue.
"""

from __future__ import annotations

import asyncio
import json
import logging
from importlib import resources

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from llm_router_server.metrics.live import LiveFeed

logger = logging.getLogger(__name__)

MAX_FEEDS = 16
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_STATIC = {
    "/": ("dashboard.html", "text/html"),
    "/dashboard.js": ("dashboard.js", "text/javascript"),
    "/dashboard.css": ("dashboard.css", "text/css"),
}


def _static_files() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("llm_router_server.metrics") / "static"
    return {path: ((folder / name).read_bytes(), kind) for path, (name, kind) in _STATIC.items()}


class MetricsWebServer:
    """The aiohttp server of the metrics port (see the module's docstring)."""

    def __init__(self, listen: str, registry: CollectorRegistry, feed: LiveFeed) -> None:
        self.listen = listen
        self.registry = registry
        self.feed = feed
        self.port = 0
        self.feeds = 0
        """Pages being followed now."""
        self._files = _static_files()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        """Listen; returns the bound port. Raises OSError if it cannot."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/feed", self._feed)
        for path in self._files:
            app.router.add_get(path, self._static)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        host, _, port = self.listen.rpartition(":")
        site = web.TCPSite(runner, host.strip("[]"), int(port))
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        logger.info("metrics and live page on http://%s:%d/", host, self.port)
        return self.port

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = await asyncio.to_thread(encoder, self.registry)
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _static(self, request: web.Request) -> web.Response:
        body, kind = self._files[request.path]
        return web.Response(body=body, content_type=kind, headers=SECURITY_HEADERS)

    async def _feed(self, request: web.Request) -> web.StreamResponse:
        if self.feeds >= MAX_FEEDS:
            raise web.HTTPServiceUnavailable(text=f"at most {MAX_FEEDS} pages at once\n")
        self.feeds += 1
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", **SECURITY_HEADERS}
        )
        messages = self.feed.messages()
        try:
            await response.prepare(request)
            # A snapshot comes at least every LiveFeed.interval: a page that went away is
            # noticed at the next write.
            async for message in messages:
                if self._closing.is_set():
                    break
                line = json.dumps(message, separators=(",", ":"))
                await response.write(f"data: {line}\n\n".encode())
        except ConnectionResetError:
            pass  # the page went away
        finally:
            self.feeds -= 1
            await messages.aclose()
        return response
