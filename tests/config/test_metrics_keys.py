"""The [metrics] keys: read from the file with environment overrides; bad values name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_router_server import config
from llm_router_server.config import MetricsConfig
from llm_router_server.errors import ConfigError
from tests.support.checkout import ROOT
from tests.support.config_files import load_text


def test_metrics_keys_load_with_env_overrides(tmp_path: Path) -> None:
    text = (
        '[metrics]\nredis_url = "redis://127.0.0.1:6390/1"\nbuffer_size = 50\n'
        "stream_maxlen = 500\nredis_timeout = 0.5\nwatcher_queue = 10\n"
        'prometheus_listen = "127.0.0.1:9464"\nreplica_id = "file"\n'
    )
    cfg = load_text(tmp_path, text, env={"LLM_ROUTER_REPLICA_ID": "env"})
    assert cfg.metrics == MetricsConfig(
        redis_url="redis://127.0.0.1:6390/1",
        replica_id="env",
        buffer_size=50,
        stream_maxlen=500,
        redis_timeout=0.5,
        watcher_queue=10,
        prometheus_listen="127.0.0.1:9464",
    )
    example = config.load(ROOT / "config.example.toml", env={}).metrics
    assert example == MetricsConfig()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("buffer_size = 0", "metrics.buffer_size: must be > 0"),
        ('stream_maxlen = "big"', "metrics.stream_maxlen: expected int"),
        ("watcher_queue = -1", "metrics.watcher_queue: must be > 0"),
        ("redis_timeout = 0", "metrics.redis_timeout: must be > 0"),
        ('redis_url = "http://127.0.0.1:6379"', "metrics.redis_url: expected redis://"),
        ('prometheus_listen = "9464"', "metrics.prometheus_listen: expected host:port"),
        ('prometheus_listen = "127.0.0.1:99999"', "metrics.prometheus_listen"),
        ('redis_host = "x"', "unknown key(s): 'metrics.redis_host'"),
    ],
)
def test_bad_metrics_values_stop_start_up_naming_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, f"[metrics]\n{text}\n")
    assert message in str(info.value)
