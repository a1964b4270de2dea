"""Regenerate the Python code for proto/ into client/llm_router/.

Run: python scripts/gen_protos.py   (CI runs it and fails on any diff)

The generated modules' import path equals the proto package
(``from llm_router.v1 import router_pb2``), so no import rewriting is needed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grpc_tools

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "client"
WELL_KNOWN = Path(grpc_tools.__file__).parent / "_proto"


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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
