"""Configuration of resilience and security: [breaker], [auth], [tls], per-chain hedging and
refusal policy, per-model concurrency and warm-up, and the limits; bad values name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_router_server import config
from llm_router_server.config import BreakerPolicy
from llm_router_server.errors import ConfigError
from tests.support.checkout import ROOT
from tests.support.config_files import load_text

CHAIN = '[chains.default]\nmodels = [{model = "m"}]\n'


def test_defaults() -> None:
    cfg = config.load(env={})
    assert cfg.breaker == BreakerPolicy()
    assert cfg.breaker.failure_threshold == 3 and cfg.breaker.when_all_open == "try_one"
    assert cfg.auth.tokens == () and cfg.tls.cert_file == ""
    assert cfg.server.max_receive_bytes == 4 * 1024 * 1024
    assert cfg.limits.max_schema_depth == 32
    chain = cfg.chains["default"]
    assert chain.hedge_after_ms == 0 and chain.refusal_policy == "fall_through"
    assert all(m.max_concurrency == 0 and not m.warm_up for m in chain.models)


def test_the_example_file_sets_every_new_key_to_its_default() -> None:
    cfg = config.load(ROOT / "config.example.toml", env={})
    assert cfg.breaker == BreakerPolicy()
    assert cfg.server.max_receive_bytes == 4 * 1024 * 1024


def test_every_key_is_read(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    cfg = load_text(
        tmp_path,
        f"""
[server]
max_receive_bytes = 1000
[limits]
max_schema_depth = 5
[breaker]
enabled = false
failure_threshold = 2
cool_down_seconds = 1.5
max_cool_down_seconds = 9
when_all_open = "fail"
shared = false
[auth]
tokens = ["0123456789abcdef"]
[tls]
cert_file = "{cert}"
key_file = "{cert}"
client_ca_file = "{cert}"
[chains.default]
hedge_after_ms = 250
refusal_policy = "stop"
models = [{{model = "m", max_concurrency = 2, warm_up = true}}]
""",
        env={"LLM_ROUTER_AUTH_TOKENS": "fedcba9876543210, abcdefabcdefabcdef"},
    )
    assert cfg.breaker == BreakerPolicy(False, 2, 1.5, 9.0, "fail", shared=False)
    assert cfg.auth.tokens == ("0123456789abcdef", "fedcba9876543210", "abcdefabcdefabcdef")
    assert cfg.tls.client_ca_file == str(cert)
    assert cfg.server.max_receive_bytes == 1000 and cfg.limits.max_schema_depth == 5
    chain = cfg.chains["default"]
    assert (chain.hedge_after_ms, chain.refusal_policy) == (250.0, "stop")
    assert (chain.models[0].max_concurrency, chain.models[0].warm_up) == (2, True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[breaker]\nthreshold = 1\n", "unknown key(s): 'breaker.threshold'"),
        ("[breaker]\nfailure_threshold = 0\n", "breaker.failure_threshold: must be > 0"),
        ("[breaker]\ncool_down_seconds = -1\n", "breaker.cool_down_seconds: must be > 0"),
        ('[breaker]\nenabled = "yes"\n', "breaker.enabled: expected bool"),
        ("[breaker]\nshared = 1\n", "breaker.shared: expected bool"),
        ('[breaker]\nwhen_all_open = "panic"\n', "breaker.when_all_open: expected one of"),
        (
            "[breaker]\ncool_down_seconds = 10\nmax_cool_down_seconds = 5\n",
            "breaker.max_cool_down_seconds: must be >= cool_down_seconds",
        ),
        ('[auth]\ntokens = ["short"]\n', "auth.tokens: every token must be"),
        ("[auth]\ntokens = [1234567890123456789]\n", "auth.tokens: every token must be"),
        ('[auth]\ntoken = "x"\n', "unknown key(s): 'auth.token'"),
        ('[tls]\ncert_file = "/nonexistent.pem"\n', "tls.cert_file/tls.key_file: set both"),
        (
            '[tls]\ncert_file = "/nonexistent.pem"\nkey_file = "/nonexistent.key"\n',
            "tls.cert_file: file not found",
        ),
        ('[tls]\nclient_ca_file = "/x.pem"\n', "tls.client_ca_file: mTLS needs cert_file"),
        ("[server]\nmax_receive_bytes = 0\n", "server.max_receive_bytes: must be > 0"),
        ("[limits]\nmax_schema_depth = 0\n", "limits.max_schema_depth: must be > 0"),
        (CHAIN + "hedge_after_ms = -5\n", "chains.default.hedge_after_ms: must be >= 0"),
        (CHAIN + 'hedge_after_ms = "fast"\n', "chains.default.hedge_after_ms: expected float"),
        (CHAIN + 'refusal_policy = "ignore"\n', "chains.default.refusal_policy: expected one of"),
        (
            '[chains.default]\nmodels = [{model = "m", max_concurrency = -1}]\n',
            "chains.default.models[0].max_concurrency: must be >= 0",
        ),
        (
            '[chains.default]\nmodels = [{model = "m", warm_up = 1}]\n',
            "chains.default.models[0].warm_up: expected bool",
        ),
    ],
)
def test_bad_values_stop_start_up_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    assert message in str(info.value)


def test_a_short_token_from_the_environment_is_refused_without_printing_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, "", env={"LLM_ROUTER_AUTH_TOKENS": "tiny-secret"})
    assert "auth.tokens" in str(info.value) and "tiny-secret" not in str(info.value)
