"""Shared test set-up. Fixtures live in plugin modules beside the fakes they serve."""

import os

# litellm fetches a model-cost map from the internet at import unless this is set
# before it is imported; tests never reach the internet.
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")

pytest_plugins = ["tests.fakes.fixtures", "tests.server_fixtures", "tests.redis_fixtures"]
