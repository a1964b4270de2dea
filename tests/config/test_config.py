"""Configuration: defaults, the example file, env expansion, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_router_server import config
from llm_router_server.errors import ConfigError
from tests.support.checkout import ROOT
from tests.support.config_files import config_file, load_text


def test_defaults_are_the_seeds_chain_with_ollama_from_env() -> None:
    cfg = config.load(env={"OLLAMA_API_BASE": "http://10.0.0.5:11434"})
    models = cfg.chains["default"].models
    assert [(m.model, m.timeout) for m in models] == [
        ("ollama_chat/qwen2.5:7b", 8.0),
        ("claude-haiku-4-5-20251001", 30.0),
        ("claude-sonnet-4-6", 30.0),
    ]
    assert models[0].api_base == "http://10.0.0.5:11434"
    assert cfg.metrics.redis_url == ""
    assert "nie wiem" in cfg.refusal_patterns


def test_default_ollama_base_is_loopback() -> None:
    assert config.load(env={}).chains["default"].models[0].api_base == "http://127.0.0.1:11434"


def test_the_example_config_loads_and_matches_the_defaults() -> None:
    cfg = config.load(ROOT / "config.example.toml", env={})
    assert cfg.chains["default"] == config.load(env={}).chains["default"]
    assert cfg.chains["cloud"].models[0].params == {"temperature": 0}


def test_env_overrides_listen_and_redis(tmp_path: Path) -> None:
    env = {"LLM_ROUTER_LISTEN": "0.0.0.0:6000", "LLM_ROUTER_REDIS_URL": "redis://127.0.0.1:1"}
    cfg = config.load(env=env)
    assert cfg.server.listen == "0.0.0.0:6000"
    assert cfg.metrics.redis_url == "redis://127.0.0.1:1"


def test_config_path_from_env(tmp_path: Path) -> None:
    path = config_file(tmp_path, '[server]\nlisten = "127.0.0.1:7000"\n')
    assert config.load(env={"LLM_ROUTER_CONFIG": str(path)}).server.listen == "127.0.0.1:7000"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[server]\nlisen = "x"\n', "unknown key(s): 'server.lisen'"),
        ("colour = 1\n", "unknown key(s): 'colour'"),
        ('[server]\ngrace_seconds = "soon"\n', "server.grace_seconds: expected float"),
        ("[server]\ngrace_seconds = -1\n", "server.grace_seconds: must be > 0"),
        ("[limits]\nmax_messages = 0\n", "limits.max_messages: must be > 0"),
        ("[chains.a]\nmodels = []\n", "chains.a.models: a chain needs at least one model"),
        ("[chains.a]\nmodels = [{timeout = 1}]\n", "chains.a.models[0].model: required"),
        (
            '[chains.a]\nmodels = [{model = "m", timout = 1}]\n',
            "unknown key(s): 'chains.a.models[0].timout'",
        ),
        (
            '[chains.a]\nmodels = [{model = "m", structured_output = "yes"}]\n',
            "chains.a.models[0].structured_output: expected bool",
        ),
        ('default_chain = "x"\n', "default_chain: 'x' is not defined"),
        ('[chains.a]\nmodels = [{model = "m", api_base = "${NOPE}"}]\n', "NOPE is not set"),
        ("refusal_patterns = [1]\n", "refusal_patterns: expected a list of non-empty strings"),
        ("this is = not toml", "not valid TOML"),
    ],
)
def test_bad_config_stops_start_up_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    assert message in str(info.value)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        config.load(tmp_path / "absent.toml", env={})


def test_env_default_in_file_is_used(tmp_path: Path) -> None:
    text = '[chains.a]\nmodels = [{model = "m", api_base = "${X:-http://127.0.0.1:9}"}]\n'
    cfg = load_text(tmp_path, 'default_chain = "a"\n' + text)
    assert cfg.chains["a"].models[0].api_base == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            '{model = "m", provider = "fast"}',
            "chains.a.models[0].provider: expected one of 'auto', 'native', 'litellm', got 'fast'",
        ),
        (
            '{model = "ollama/qwen", provider = "native"}',
            "chains.a.models[0].provider: 'native' cannot serve this model: model 'ollama/qwen'",
        ),
        (
            '{model = "openai/x", provider = "native", params = {logit_bias = {}}}',
            "provider: 'native' cannot serve this model: params logit_bias are not supported",
        ),
    ],
)
def test_a_provider_the_model_cannot_have_stops_start_up(
    tmp_path: Path, model: str, message: str
) -> None:
    text = f'default_chain = "a"\n[chains.a]\nmodels = [{model}]\n'
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    assert message in str(info.value)


def test_provider_defaults_to_auto_and_accepts_each_choice(tmp_path: Path) -> None:
    text = (
        'default_chain = "a"\n[chains.a]\nmodels = [{model = "ollama_chat/q"},'
        ' {model = "claude-haiku-4-5", provider = "native"}, {model = "m", provider = "litellm"}]\n'
    )
    models = load_text(tmp_path, text).chains["a"].models
    assert [m.provider for m in models] == ["auto", "native", "litellm"]


def test_env_override_with_the_same_key_in_the_file(tmp_path: Path) -> None:
    """An env override must not leave the file's key unread (which would be 'unknown')."""
    path = config_file(
        tmp_path, '[server]\nlisten = "127.0.0.1:1"\n[metrics]\nredis_url = "redis://x"\n'
    )
    env = {"LLM_ROUTER_LISTEN": "127.0.0.1:2", "LLM_ROUTER_REDIS_URL": "redis://127.0.0.1:3"}
    cfg = config.load(path, env=env)
    assert cfg.server.listen == "127.0.0.1:2"
    assert cfg.metrics.redis_url == "redis://127.0.0.1:3"


def test_missing_cloud_api_keys_are_named_at_start_up() -> None:
    """The default chain without ANTHROPIC_API_KEY: both Claude models are named once;
    the local model needs no key; a key in params counts."""
    from llm_router_server.app import warn_missing_api_keys

    cfg = config.load(env={})
    warnings = warn_missing_api_keys(cfg, env={})
    assert [w.split(":")[0] for w in warnings] == [
        "claude-haiku-4-5-20251001",
        "claude-sonnet-4-6",
    ]
    assert "ANTHROPIC_API_KEY is not set" in warnings[0]
    assert warn_missing_api_keys(cfg, env={"ANTHROPIC_API_KEY": "sk-ant-x"}) == []
