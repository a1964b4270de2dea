"""The live-page tests' browser: Debian's ``chromium`` (``scripts/test`` installs it)."""

from collections.abc import AsyncIterator

import pytest

from tests.web.browser import Chromium, chromium_path


@pytest.fixture
async def browser() -> AsyncIterator[Chromium]:
    if chromium_path() is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    async with Chromium() as page:
        yield page
