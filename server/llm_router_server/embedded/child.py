"""The embedded model's process: llama.cpp's own HTTP server, from the ``xllamacpp`` wheel.

Run by ``EmbeddedServer`` (``process.py``) as a child process, never imported by
the router::

    python child.py --model FILE.gguf --port N [--threads N] [--ctx-size N]

It serves llama.cpp's OpenAI-compatible API (``/v1/chat/completions``, where a
``response_format`` JSON Schema becomes a grammar) and ``/health`` on
127.0.0.1:N. Calls need ``Authorization: Bearer $LLM_ROUTER_EMBEDDED_API_KEY``
when that variable is set (the router sets a fresh one per start, so no other
local process uses the server by accident; the key is not on the command line).
It runs until SIGTERM, or until its standard input closes: the router holds
the other end, so the child ends with the router even when the router is killed.

Self-contained on purpose (standard library and ``xllamacpp`` only): it runs
from its file path, whatever ``sys.path`` the router had. A crash here (a
bad model file, a fault in native code) ends this process only; the router
reports it and starts a new one.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

# OpenMP's worker threads spin while they wait for work by default. On a machine
# whose cores are busy with other work (the router, its callers) they then fight
# for the cores: measured on 2 busy cores, 2-4 tokens/s spinning against 50-60 passive.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

API_KEY_VARIABLE = "LLM_ROUTER_EMBEDDED_API_KEY"


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the GGUF file")
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for decoding")
    parser.add_argument("--ctx-size", type=int, default=2048, help="context window, in tokens")
    return parser.parse_args(argv)


def exit_when_stdin_closes() -> None:
    """Stop when the router's end of our standard input closes (the router is gone)."""
    sys.stdin.buffer.read()
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    # The router stops us (SIGTERM, or closing stdin); a Ctrl-C at its terminal is its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.hostnames = ["127.0.0.1"]
    params.port = args.port
    params.n_ctx = args.ctx_size
    params.n_parallel = 1
    for cpu in (params.cpuparams, params.cpuparams_batch):
        cpu.n_threads = args.threads
        cpu.poll = 0  # wait passively for work, as OMP_WAIT_POLICY above
    params.ui = False
    params.endpoint_slots = False
    key = os.environ.get(API_KEY_VARIABLE, "")
    if key:
        params.api_keys = [key]
    threading.Thread(target=exit_when_stdin_closes, name="stdin-watch", daemon=True).start()
    try:
        server = xllamacpp.Server(params)  # returns once the model is loaded and the port listens
    except Exception as exc:  # llama.cpp said why on stderr already
        print(f"embedded model server: {exc}", file=sys.stderr, flush=True)
        os._exit(1)  # not sys.exit: the stdin thread would block the interpreter's shutdown
    print(f"embedded model server listening on {server.listening_address}", flush=True)
    threading.Event().wait()  # until SIGTERM (default action) or stdin closes


if __name__ == "__main__":
    main()
