"""The [embedded] table: off by default, the seed chain's last resort when on, named by chains
with api_base = "embedded", and errors that name the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llm_router_server import config
from llm_router_server.embedded import model
from llm_router_server.embedded.process import attach
from llm_router_server.embedded.settings import EMBEDDED_API_BASE, EmbeddedConfig
from llm_router_server.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SEED = ["ollama_chat/qwen2.5:7b", "claude-haiku-4-5-20251001", "claude-sonnet-4-6"]


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> config.Config:
    path = tmp_path / "llm-router.toml"
    path.write_text(text)
    return config.load(path, env=env or {})


def test_off_by_default_the_seed_chain_is_unchanged() -> None:
    cfg = config.load(env={})
    assert cfg.embedded == EmbeddedConfig()
    assert [m.model for m in cfg.chains["default"].models] == SEED


def test_the_example_file_sets_every_embedded_key_to_its_default() -> None:
    assert config.load(ROOT / "config.example.toml", env={}).embedded == EmbeddedConfig()


@pytest.mark.parametrize("value", ["on", "1", "true", "ON"])
def test_switched_on_the_seed_chain_ends_with_the_embedded_model(value: str, gguf: Path) -> None:
    cfg = config.load(env={"LLM_ROUTER_EMBEDDED": value})
    *seed, last = cfg.chains["default"].models
    assert [m.model for m in seed] == SEED
    assert last.model == f"openai/{gguf.stem}"
    assert last.api_base == EMBEDDED_API_BASE
    assert (last.timeout, last.structured_output) == (30.0, True)
    assert last.params == {"max_tokens": 512, "temperature": 0}


def test_the_environment_sets_the_default_and_the_file_has_the_last_word(tmp_path: Path) -> None:
    settings = "[embedded]\nthreads = 1\nctx_size = 1024\ntimeout = 12\n"
    on = load(tmp_path, settings, env={"LLM_ROUTER_EMBEDDED": "on"})
    assert on.embedded.enabled and on.embedded.threads == 1 and on.embedded.ctx_size == 1024
    assert on.chains["default"].models[-1].timeout == 12.0
    off = load(tmp_path, settings + "enabled = false\n", env={"LLM_ROUTER_EMBEDDED": "on"})
    assert [m.model for m in off.chains["default"].models] == SEED
    assert load(
        tmp_path, "[embedded]\nenabled = true\n", env={"LLM_ROUTER_EMBEDDED": "0"}
    ).embedded.enabled


def test_a_chain_of_ones_own_names_it_and_gets_the_running_servers_url_and_key(
    tmp_path: Path, gguf: Path
) -> None:
    cfg = load(
        tmp_path,
        """
[embedded]
enabled = true
[chains.default]
models = [
  { model = "ollama_chat/qwen2.5:7b", timeout = 5 },
  { model = "openai/smollm2", api_base = "embedded", timeout = 20, params = { max_tokens = 64 } },
]
""",
    )
    assert len(cfg.chains["default"].models) == 2  # own chains get nothing added
    bound, server = attach(cfg)
    assert server is not None and server.gguf == gguf
    assert server.api_base == f"http://127.0.0.1:{server.port}/v1"
    local = bound.chains["default"].models[1]
    assert local.api_base == server.api_base
    assert local.params == {"max_tokens": 64, "api_key": server.api_key}
    assert bound.chains["default"].models[0] == cfg.chains["default"].models[0]


def test_a_config_that_does_not_name_it_starts_nothing(tmp_path: Path) -> None:
    text = '[embedded]\nenabled = true\n[[chains.default.models]]\nmodel = "openai/a"\n'
    cfg = load(tmp_path, text)
    assert attach(cfg) == (cfg, None)
    assert attach(config.load(env={})) == (config.load(env={}), None)


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        (
            '[[chains.default.models]]\nmodel = "openai/a"\napi_base = "embedded"\n',
            {},
            "chains.default.models[0]: api_base 'embedded' names the embedded model, which is off",
        ),
        (
            '[embedded]\nenabled = true\n[[chains.default.models]]\nmodel = "ollama_chat/a"\n'
            'api_base = "embedded"\n',
            {},
            "chains.default.models[0]: the embedded model speaks the OpenAI protocol",
        ),
        ("[embedded]\nthreds = 2\n", {}, "unknown key(s): 'embedded.threds'"),
        ("[embedded]\nthreads = 0\n", {}, "embedded.threads: must be > 0"),
        ("[embedded]\nport = 70000\n", {}, "embedded.port: expected 0-65535"),
        ("", {"LLM_ROUTER_EMBEDDED": "maybe"}, "LLM_ROUTER_EMBEDDED: expected on or off"),
        (
            '[embedded]\nenabled = true\nmodel_path = "/nonexistent/model.gguf"\n',
            {},
            "embedded.model_path: file not found: /nonexistent/model.gguf",
        ),
    ],
)
def test_bad_settings_stop_start_up_naming_the_key(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(tmp_path, text, env)


def test_an_explicit_model_path_wins_and_names_the_model(tmp_path: Path, gguf: Path) -> None:
    own = tmp_path / "my-model.Q8_0.gguf"
    own.symlink_to(gguf)
    cfg = load(tmp_path, f'[embedded]\nenabled = true\nmodel_path = "{own}"\n')
    assert cfg.chains["default"].models[-1].model == "openai/my-model.Q8_0"
    assert model.locate(str(own)) == own


def test_the_model_command_prints_where_the_model_is(
    gguf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert model.main(["path"]) == 0
    assert capsys.readouterr().out.strip() == str(gguf)
    assert model.main(["what"]) == 2
