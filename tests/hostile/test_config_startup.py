"""Issue 10, item 8: a configuration that would start but cannot work, or that failed
without naming its key, stops ``llm-router serve`` with a message naming the key.

Before, each of these started (and failed every call, listened elsewhere, shared a port or
ran the built-in chain) or died with a traceback or "Failed to bind to address". After:
configuration errors exit 2 ("configuration error: KEY: ..."), ports that cannot be bound
exit 1 ("cannot serve: KEY: cannot listen on ADDRESS: REASON"), before the server reports
SERVING.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from llm_router_server.app import App
from llm_router_server.config import Config, ServerConfig
from llm_router_server.types import ChainSpec, ModelSpec
from tests.support.net import free_port
from tests.support.processes import run_command
from tests.support.server import Serve, ollama
from tests.support.upstream import FakeUpstream

pytestmark = pytest.mark.timeout(120)

MODEL = (
    '[chains.default]\nmodels = [{ model = "ollama_chat/q", api_base = "http://127.0.0.1:9" }]\n'
)


def chain(model_keys: str) -> str:
    return f'[chains.default]\nmodels = [{{ model = "ollama_chat/q", {model_keys} }}]\n'


URL = "expected an http:// or https:// URL"
MODEL_KEY = "chains.default.models[0]"
CONFIG_ERRORS = {
    "api_base not a url": (chain('api_base = "not a url"'), f"{MODEL_KEY}.api_base: {URL}"),
    "api_base without a scheme": (
        chain('api_base = "127.0.0.1:11434"'),
        f"{MODEL_KEY}.api_base: {URL}, got '127.0.0.1:11434'",
    ),
    "api_base ftp": (chain('api_base = "ftp://127.0.0.1:11434"'), f"{MODEL_KEY}.api_base: {URL}"),
    "api_base without a host": (chain('api_base = "http:///v1"'), "the URL has no host"),
    "api_base port out of range": (
        chain('api_base = "http://127.0.0.1:99999"'),
        f"{MODEL_KEY}.api_base: the URL's port is not a number from 0 to 65535",
    ),
    "listen port out of range": (
        '[server]\nlisten = "127.0.0.1:99999"\n' + MODEL,
        "server.listen: expected host:port with a port from 0 to 65535",
    ),
    "listen without a port": ('[server]\nlisten = "127.0.0.1"\n' + MODEL, "server.listen:"),
    "negative deadline_margin_ms": (
        "[server]\ndeadline_margin_ms = -1\n" + MODEL,
        "server.deadline_margin_ms: must be >= 0 and <= 60000, got -1.0",
    ),
    "nan deadline_margin_ms": (
        "[server]\ndeadline_margin_ms = nan\n" + MODEL,
        "server.deadline_margin_ms: must be a finite number, got nan",
    ),
    "huge deadline_margin_ms": (
        "[server]\ndeadline_margin_ms = 1e300\n" + MODEL,
        "server.deadline_margin_ms: must be >= 0 and <= 60000, got 1e+300",
    ),
    "negative min_attempt_ms": (
        "[server]\nmin_attempt_ms = -5\n" + MODEL,
        "server.min_attempt_ms: must be >= 0",
    ),
    "inf min_attempt_ms": (
        "[server]\nmin_attempt_ms = inf\n" + MODEL,
        "server.min_attempt_ms: must be a finite number, got inf",
    ),
    "inf timeout": (chain("timeout = inf"), f"{MODEL_KEY}.timeout: must be a finite number"),
    "nan timeout": (chain("timeout = nan"), f"{MODEL_KEY}.timeout: must be a finite number"),
    "huge timeout": (chain("timeout = 1e9"), f"{MODEL_KEY}.timeout: must be > 0 and <= 86400"),
    "inf grace_seconds": (
        "[server]\ngrace_seconds = inf\n" + MODEL,
        "server.grace_seconds: must be a finite number",
    ),
    "nan hedge_after_ms": (
        MODEL + "hedge_after_ms = nan\n",
        "chains.default.hedge_after_ms: must be a finite number",
    ),
    "max_receive_bytes over 32 bits": (
        "[server]\nmax_receive_bytes = 3000000000\n" + MODEL,
        "server.max_receive_bytes: must be > 0 and <= 2147483647, got 3000000000",
    ),
    "empty chains table": (
        "[chains]\n",
        "chains: the table is empty; define a chain ([chains.NAME] with models), or leave "
        "[chains] out to run the built-in chain",
    ),
}


@pytest.mark.parametrize(("text", "message"), CONFIG_ERRORS.values(), ids=CONFIG_ERRORS.keys())
def test_a_config_that_cannot_work_stops_start_up_naming_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    done = run_command("serve", "--config", str(path))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("llm-router: configuration error: "), done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--listen", "127.0.0.1:70000"], {}, "--listen: expected host:port"),
        ([], {"LLM_ROUTER_LISTEN": "localhost"}, "$LLM_ROUTER_LISTEN: expected host:port"),
        ([], {"OLLAMA_API_BASE": "localhost:11434"}, f"$OLLAMA_API_BASE: {URL}"),
    ],
    ids=["--listen", "LLM_ROUTER_LISTEN", "OLLAMA_API_BASE"],
)
def test_addresses_from_the_command_line_and_environment_are_checked_too(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text("" if "OLLAMA_API_BASE" in env else MODEL)
    done = run_command("serve", "--config", str(path), *args, env=env)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed EC certificate for 127.0.0.1 (the openssl command)."""
    key, cert = directory / "server.key", directory / "server.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", "/CN=server", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return key, cert


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"cert_file": "junk", "key_file": "junk"}, "tls.cert_file/tls.key_file: not a PEM"),
        ({"cert_file": "cert", "key_file": "junk"}, "tls.cert_file/tls.key_file: not a PEM"),
        ({"cert_file": "cert", "key_file": "other"}, "matching"),
        (
            {"cert_file": "cert", "key_file": "key", "client_ca_file": "junk"},
            "tls.client_ca_file: not PEM CA certificates",
        ),
    ],
    ids=["not-pem", "key-not-pem", "key-of-another-cert", "ca-not-pem"],
)
def test_tls_files_that_do_not_load_stop_start_up_naming_the_key(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    key, cert = self_signed(tmp_path)
    (tmp_path / "other").mkdir()
    other_key, _ = self_signed(tmp_path / "other")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    paths = {"junk": junk, "cert": cert, "key": key, "other": other_key}
    keys = "".join(f'{name} = "{paths[which]}"\n' for name, which in files.items())
    path = tmp_path / "c.toml"
    path.write_text(f'[server]\nlisten = "127.0.0.1:{free_port()}"\n[tls]\n{keys}{MODEL}')
    done = run_command("serve", "--config", str(path))
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Failed to bind" not in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_a_busy_prometheus_port_stops_start_up_naming_the_key(
    tmp_path: Path, taken_port: int
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        f'[server]\nlisten = "127.0.0.1:{free_port()}"\n'
        f'[metrics]\nprometheus_listen = "127.0.0.1:{taken_port}"\n{MODEL}'
    )
    done = run_command("serve", "--config", str(path))
    assert done.returncode == 1, done.stderr
    assert (
        f"llm-router: cannot serve: metrics.prometheus_listen: cannot listen on "
        f"127.0.0.1:{taken_port}: Address already in use"
    ) in done.stderr


async def test_a_second_server_on_the_same_port_stops_instead_of_sharing_it(
    tmp_path: Path, serve: Serve, upstream: Callable[[], FakeUpstream]
) -> None:
    """grpc sets SO_REUSEPORT by default: a second server on a busy port would silently
    share it (and get half the calls). It is turned off, so the second one stops."""
    first = await serve([ollama(upstream())])
    path = tmp_path / "c.toml"
    path.write_text(f'[server]\nlisten = "{first.target}"\n{MODEL}')
    done = run_command("serve", "--config", str(path))
    assert done.returncode == 1, done.stderr
    assert (
        f"llm-router: cannot serve: server.listen: cannot listen on {first.target}: "
        "Address already in use"
    ) in done.stderr
    assert (await first.route()).content.string_value == "ok"


async def test_a_busy_port_in_process_raises_oserror_naming_the_key(taken_port: int) -> None:
    chains = {"default": ChainSpec("default", (ModelSpec("ollama_chat/q", 5),))}
    app = App(Config(server=ServerConfig(listen=f"127.0.0.1:{taken_port}"), chains=chains))
    with pytest.raises(OSError, match=r"^server\.listen: cannot listen on 127\.0\.0\.1:\d+: "):
        await app.start()
    await app.stop(0)
