"""Regenerate the Python code for proto/ into client/llm_router/ and the Go code into client/go/.

Run: python scripts/gen_protos.py   (CI runs it and fails on any diff)

The generated modules' import path equals the proto package
(``from llm_router.v1 import router_pb2``), so no import rewriting is needed.
The Go code goes where the proto's ``go_package`` says, inside the module
``llm-router/client/go``. The Go plugins are pinned (their versions are written
into the generated files); install them with

    go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
    go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
"""

from __future__ import annotations

import os
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
GO_MODULE = "llm-router/client/go"
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
    go_cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{WELL_KNOWN}",
        f"--plugin=protoc-gen-go={go_plugin('protoc-gen-go')}",
        f"--plugin=protoc-gen-go-grpc={go_plugin('protoc-gen-go-grpc')}",
        f"--go_out={GO_OUT_DIR}",
        f"--go_opt=module={GO_MODULE}",
        f"--go-grpc_out={GO_OUT_DIR}",
        f"--go-grpc_opt=module={GO_MODULE}",
        *protos,
    ]
    subprocess.run(go_cmd, check=True, cwd=PROTO_DIR)
    print(f"generated Go code for {len(protos)} proto file(s) into {GO_OUT_DIR.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
