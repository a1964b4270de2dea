"""Anthropic Messages, ``POST {api_base}/v1/messages`` (``anthropic/`` and bare ``claude-`` models).

Params are top-level keys of the body; the API key goes in ``x-api-key``;
system turns are joined into the top-level ``system``. Answers: the text
blocks joined; ``stop_reason`` mapped to a chat-completions finish reason as
litellm maps it (``refusal`` -> ``content_filter``, a refusal; ``max_tokens`` ->
``length``, whose cut-off text the chain then judges like any other); prompt
tokens count cache writes and reads, as litellm counts them.

Structured output, chosen per model and per schema (``structured()``) the way
litellm 1.110 chooses it for the same model, so both paths send the same request:

- Models in ``OUTPUT_FORMAT_MODELS`` (the Claude models litellm's model map
  flags ``supports_native_structured_output``: Haiku 4.5, Sonnet 4.5/4.6,
  Opus 4.5 and later) get ``output_format: {type: json_schema, schema}`` with
  the ``anthropic-beta: structured-outputs-2025-11-13`` header (``call_headers``).
  The answer is the text. The schema is first shaped as Anthropic's SDKs and
  litellm shape it (``anthropic_schema.output_schema``): keywords the
  constrained decoder rejects with HTTP 400 (``minLength``, ``minimum``,
  ``maxItems``, ``not``, ...) become a note in the node's ``description``,
  ``oneOf`` becomes ``anyOf``, and every object gets ``additionalProperties:
  false``, which the API requires. The chain still validates the answer
  against the caller's own schema, so nothing the decoder cannot enforce is lost.
- Every other Claude model, and any schema ``output_format`` cannot express
  (an open object: ``additionalProperties`` true or a schema, or
  ``patternProperties``, or an object without ``properties``; and, unlike
  litellm, a recursive ``$ref``, which the docs list as unsupported), gets the
  forced-tool technique: ``tools: [{name: json_tool_call, input_schema}]`` and
  ``tool_choice: {type: tool, name: json_tool_call}``; the answer is the JSON
  text of the ``tool_use`` block's ``input`` (``json.dumps``, as litellm writes
  it). A model in ``NO_FORCED_TOOL`` (rejects a forced tool choice) keeps
  ``output_format`` for open objects, as litellm does.
- A tool's ``input_schema`` must be an object. A schema whose root ``type`` is
  something else (an array, a string, ...) is wrapped, unlike litellm (which
  sends it and gets HTTP 400): the tool is ``json_tool_value`` with one
  required property ``value`` holding the caller's schema, and the answer is
  that property's JSON.
- ``$ref``s are sent as the caller wrote them (the API resolves local ones).
  litellm inlines ``$defs`` for ``output_format`` and, for the tool, rewrites
  ``#/$defs/NAME`` to ``/$defs/NAME``, which no longer resolves.

The request part of a schema is worked out once per schema object (the chain
compiles each schema text once) and kept for the latest few hundred schemas.

Why ``output_format`` with the beta header rather than the GA
``output_config.format`` (no header): it is what litellm sends, the docs keep
it working for a transition period, and one body for both paths keeps them
pinned by the same wire tests. Moving to ``output_config`` is one edit here
(``_plan`` and ``call_headers``). Schemas the API still rejects (over
its complexity limits: more than 24 optional or 16 union-typed properties,
unsupported ``pattern`` regexes or string formats) come back as HTTP 400, a
``ProviderStatusError`` that neither path retries and the breaker ignores: the
chain moves on to its next model. A model can be sent to litellm's own rules
with ``provider = "litellm"``.

A refusal (``stop_reason: refusal``) is a refusal even when a tool call came
with it (litellm would report a JSON tool answer as finished normally).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from llm_router_server.providers import anthropic_schema, shaping
from llm_router_server.types import Completion, CompletionRequest, Usage

VERSION = "2023-06-01"
"""The ``anthropic-version`` header litellm sends."""
STRUCTURED_BETA = "structured-outputs-2025-11-13"
"""The ``anthropic-beta`` value that enables ``output_format``."""
TOOL = "json_tool_call"
"""The forced tool whose input is the answer (litellm's ``RESPONSE_FORMAT_TOOL_NAME``)."""
VALUE_TOOL = "json_tool_value"
"""The forced tool for a schema whose root is not an object: the answer is ``input.value``."""

OUTPUT_FORMAT_MODELS: tuple[str, ...] = (
    # Model-name prefixes with native structured output, from litellm's model map.
    *("claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-5", "claude-sonnet-4-6"),
    *("claude-opus-4-6", "claude-opus-4-7", "claude-opus-4-8"),
    *("claude-haiku-5", "claude-sonnet-5", "claude-opus-5", "claude-fable-5", "claude-mythos-5"),
    *("claude-mythos-preview", "claude-haiku-latest", "claude-sonnet-latest"),
    *("claude-opus-latest", "claude-fable-latest"),
)
NO_FORCED_TOOL: tuple[str, ...] = (
    # Prefixes of models that reject tool_choice {type: tool} (litellm's supports_forced_tool_use).
    *("claude-fable-5-1", "claude-mythos-5-1", "claude-opus-5-5", "claude-sonnet-5-5"),
    *("claude-opus-latest", "claude-sonnet-latest", "claude-fable-latest"),
)

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "stop",  # only the forced answer tool is ever offered
    "max_tokens": "length",
    "refusal": "content_filter",
}
_PLANS_KEPT = 256
_PLAN_BYTES_KEPT = 4 << 20
"""The request parts of the latest schemas are kept: at most ``_PLANS_KEPT`` of them and about
this many bytes (twice each part's JSON: the caller's schema it holds and the shaped copy)."""


class Anthropic:
    """The ``anthropic`` wire protocol (see ``protocols.WireProtocol``)."""

    name = "anthropic"
    bare_prefixes: tuple[str, ...] = ("claude-",)
    params: Mapping[str, str] = {
        # litellm argument -> top-level key of the body ("api_key" -> x-api-key).
        "max_tokens": "max_tokens",
        "max_completion_tokens": "max_tokens",
        "temperature": "temperature",
        "top_p": "top_p",
        "top_k": "top_k",
        "api_key": "",
    }
    base_variables: tuple[str, ...] = ("ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL")
    default_base = "https://api.anthropic.com"
    key_variable: str | None = "ANTHROPIC_API_KEY"
    serves_schema = True
    # Its schema shaping (anthropic_schema) already notes what the decoder drops in the
    # nodes' descriptions, so no constraint notes are added on top.
    unenforced: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self._plans: dict[tuple[int, str], tuple[Mapping[str, Any], dict[str, Any], int]] = {}
        self._plan_bytes = 0

    def url(self, base: str) -> str:
        return base if base.endswith("/v1/messages") else base + "/v1/messages"

    def headers(self, key: str) -> dict[str, str]:
        return {"anthropic-version": VERSION, "x-api-key": key}

    def call_headers(
        self, headers: Mapping[str, str], body: Mapping[str, Any]
    ) -> Mapping[str, str]:
        if "output_format" in body:
            return {**headers, "anthropic-beta": STRUCTURED_BETA}
        return headers

    def fixed_body(self, name: str, options: Mapping[str, Any]) -> dict[str, Any]:
        return {"model": name, **options}

    def body(self, fixed: Mapping[str, Any], request: CompletionRequest) -> dict[str, Any]:
        turns = [m for m in request.messages if m.role != "system"]
        system = [m.content for m in request.messages if m.role == "system"]
        body = {**fixed, "messages": shaping.messages(turns)}
        if system:
            body["system"] = "\n\n".join(system)
        if request.schema is not None:
            body.update(self.structured(str(fixed["model"]), request.schema))
        return body

    def structured(self, model: str, schema: Mapping[str, Any]) -> dict[str, Any]:
        """The body keys that carry ``schema`` to ``model`` (worked out once per schema)."""
        kind = _kind(model)
        key = (id(schema), kind)
        kept = self._plans.get(key)
        if kept is not None and kept[0] is schema:
            return kept[1]
        plan = _plan(kind, schema)
        size = 2 * len(json.dumps(plan))
        if size <= _PLAN_BYTES_KEPT // 8:
            while self._plans and (
                len(self._plans) >= _PLANS_KEPT or self._plan_bytes + size > _PLAN_BYTES_KEPT
            ):
                self._plan_bytes -= self._plans.pop(next(iter(self._plans)))[2]
            self._plans[key] = (schema, plan, size)  # holds schema: its id stays unique
            self._plan_bytes += size
        return plan

    def completion(self, answer: Mapping[str, Any]) -> Completion:
        blocks = answer.get("content")
        if not isinstance(blocks, list):
            raise shaping.malformed("no content")
        text = _tool_answer(blocks)
        if text is None:
            text = "".join(
                b["text"] for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str)
            )
        stop = answer.get("stop_reason")
        counts = answer.get("usage")
        return shaping.completion(
            text,
            _FINISH.get(str(stop), stop),
            _usage(counts) if isinstance(counts, dict) else None,
            answer.get("model"),
        )


def _kind(model: str) -> str:
    """How a model takes a schema: ``output_format``, ``output_format_only`` or ``tool``."""
    if not model.startswith(OUTPUT_FORMAT_MODELS):
        return "tool"
    return "output_format_only" if model.startswith(NO_FORCED_TOOL) else "output_format"


def _plan(kind: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    if kind == "output_format_only" or (
        kind == "output_format" and anthropic_schema.output_format_can_express(schema)
    ):
        return {
            "output_format": {
                "type": "json_schema",
                "schema": anthropic_schema.output_schema(schema),
            }
        }
    if schema.get("type", "object") == "object":
        name, input_schema = TOOL, {"type": "object", **schema}
    else:
        name = VALUE_TOOL
        input_schema = {"type": "object", "properties": {"value": dict(schema)}}
        input_schema["required"] = ["value"]
    return {
        "tools": [{"name": name, "input_schema": input_schema}],
        "tool_choice": {"name": name, "type": "tool"},
    }


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _tool_answer(blocks: list[Any]) -> str | None:
    """The JSON text of the forced tool's input, if the answer called it."""
    for block in blocks:
        if not isinstance(block, dict) or block.get("type") != "tool_use":
            continue
        value = block.get("input")
        if block.get("name") == VALUE_TOOL and isinstance(value, dict) and "value" in value:
            value = value["value"]
        elif block.get("name") != TOOL or not isinstance(value, dict):
            continue
        text = json.dumps(value, ensure_ascii=False)
        # A lone surrogate cannot be encoded as UTF-8: escape it, as litellm does.
        return json.dumps(value) if _LONE_SURROGATE.search(text) else text
    return None


def _usage(counts: Mapping[str, Any]) -> Usage | None:
    """Prompt tokens include cache writes and reads, as litellm counts them."""
    prompt = counts.get("input_tokens")
    if not isinstance(prompt, int):
        return None
    for key in ("cache_creation_input_tokens", "cache_read_input_tokens"):
        extra = counts.get(key)
        prompt += extra if isinstance(extra, int) else 0
    return shaping.usage(prompt, counts.get("output_tokens"))
