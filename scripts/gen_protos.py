"""Regenerate the Python code for proto/ into client/llm_router/ and the Go code into client/go/.

Run: python scripts/gen_protos.py   (CI runs it and fails on any diff)

The generated modules' import path equals the proto package
(``from llm_router.v1 import router_pb2``), so no import rewriting is needed.
The Go code is the package ``llmrouterv1`` of the Go module ``GO_REPOSITORY/client/go``.
``GO_REPOSITORY`` below is the one place that says where the repository is hosted: change
it and run this script, and go.mod, the generated code and every import in client/go
follow (the proto carries no ``go_package``: the import path is not part of the contract).
The Go plugins are pinned (their versions are written into the generated files); install
them with

    go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
    go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import grpc_tools

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "client"
WELL_KNOWN = Path(grpc_tools.__file__).parent / "_proto"
GO_OUT_DIR = ROOT / "client" / "go"
GO_REPOSITORY = "github.com/llm-router/llm-router"
"""Where this repository is hosted, as a Go import path (``go get`` fetches the module from
there: ``go get github.com/OWNER/REPO/client/go@latest``; release tags are ``client/go/vX.Y.Z``)."""
GO_MODULE = f"{GO_REPOSITORY}/client/go"
GO_PACKAGE = "llmrouterv1"
GO_PLUGINS = {
    "protoc-gen-go": ("google.golang.org/protobuf/cmd/protoc-gen-go", "v1.36.12"),
    "protoc-gen-go-grpc": ("google.golang.org/grpc/cmd/protoc-gen-go-grpc", "1.6.2"),
}


def go_plugin(name: str) -> Path:
    """The pinned Go plugin: on PATH, in $GOBIN or in $(go env GOPATH)/bin."""
    package, version = GO_PLUGINS[name]
    dirs = [os.environ.get("GOBIN", ""), str(Path.home() / "go" / "bin")]
    go = shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")
    if go is not None:
        gopath = subprocess.run(
            [go, "env", "GOPATH"], capture_output=True, text=True, check=False
        ).stdout.strip()
        dirs += [str(Path(p) / "bin") for p in gopath.split(os.pathsep) if p]
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(d for d in dirs if d))
    install = f"go install {package}@v{version.lstrip('v')}"
    if found is None:
        sys.exit(f"{name} not found on PATH, $GOBIN or $(go env GOPATH)/bin: {install}")
    reported = subprocess.run(
        [found, "--version"], capture_output=True, text=True, check=True
    ).stdout.split()
    if not reported or reported[-1].lstrip("v") != version.lstrip("v"):
        sys.exit(f"{found} is {' '.join(reported)}, want {version}: {install}")
    return Path(found)


def set_go_module() -> None:
    """Make go.mod and every Go file of client/go use ``GO_MODULE`` (after GO_REPOSITORY
    changed)."""
    go_mod = GO_OUT_DIR / "go.mod"
    text = go_mod.read_text(encoding="utf-8")
    found = re.search(r"^module (\S+)$", text, re.M)
    if found is None:
        sys.exit(f"{go_mod}: no module line")
    old = found.group(1)
    if old == GO_MODULE:
        return
    go_mod.write_text(text.replace(f"module {old}\n", f"module {GO_MODULE}\n", 1), encoding="utf-8")
    for source in sorted(GO_OUT_DIR.rglob("*.go")):
        code = source.read_text(encoding="utf-8")
        if f"{old}/" in code:
            source.write_text(code.replace(f"{old}/", f"{GO_MODULE}/"), encoding="utf-8")
    print(f"Go module path: {old} -> {GO_MODULE}")


def main() -> int:
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    bin_dir = Path(sys.executable).parent
    for plugin in ("protoc-gen-mypy", "protoc-gen-mypy_grpc"):
        if shutil.which(plugin, path=str(bin_dir)) is None:
            sys.exit(f"{plugin} not found next to {sys.executable}: pip install mypy-protobuf")
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{WELL_KNOWN}",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={OUT_DIR}",
        f"--grpc_python_out={OUT_DIR}",
        f"--mypy_out={OUT_DIR}",
        f"--mypy_grpc_out={OUT_DIR}",
        *protos,
    ]
    subprocess.run(cmd, check=True, cwd=PROTO_DIR)
    print(
        f"generated Python code for {len(protos)} proto file(s) into {OUT_DIR.relative_to(ROOT)}/"
    )
    set_go_module()
    # Every proto file goes into the one Go package (M: the import path protoc-gen-go uses).
    go_opts = [f"module={GO_MODULE}"]
    go_opts += [f"M{p}={GO_MODULE}/{GO_PACKAGE};{GO_PACKAGE}" for p in protos]
    go_cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{WELL_KNOWN}",
        f"--plugin=protoc-gen-go={go_plugin('protoc-gen-go')}",
        f"--plugin=protoc-gen-go-grpc={go_plugin('protoc-gen-go-grpc')}",
        f"--go_out={GO_OUT_DIR}",
        *(f"--go_opt={o}" for o in go_opts),
        f"--go-grpc_out={GO_OUT_DIR}",
        *(f"--go-grpc_opt={o}" for o in go_opts),
        *protos,
    ]
    subprocess.run(go_cmd, check=True, cwd=PROTO_DIR)
    print(f"generated Go code for {len(protos)} proto file(s) into {GO_OUT_DIR.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
