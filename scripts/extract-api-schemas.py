#!/usr/bin/env python3
"""Extract the request and response schemas byok-flow speaks from the providers'
published OpenAPI specs, as standalone JSON Schemas the tests validate against.

Usage: scripts/extract-api-schemas.py [SPECS_DIR]   (default: ../shared/specs)
Writes tests/fixtures/specs/{anthropic,openai,gemini}.schema.json, each holding the
components reachable from its roots, with a `$defs`-style `components` section so
`#/components/schemas/X` references resolve, and one root per message kind under
`roots` (refer to them as `#/roots/NAME`). OpenAPI's `nullable: true` becomes a
`null` alternative, as JSON Schema validators understand it.
"""
import json
import pathlib
import re
import sys

ROOTS = {
    "anthropic": ("anthropic-openapi.json", {
        "request": "CreateMessageParams",
        "response": "Message",
        "stream_event": "MessageStreamEvent",
        "error": "ErrorResponse",
        # A request that names a beta in `anthropic-beta` (web_fetch) is checked
        # against the beta schemas, which hold the beta tools and their blocks.
        "beta_request": "BetaCreateMessageParams",
        "beta_response": "BetaMessage",
        "beta_stream_event": "BetaMessageStreamEvent",
    }),
    "openai": ("openai-openapi.json", {
        "request": "CreateChatCompletionRequest",
        "response": "CreateChatCompletionResponse",
        "stream_event": "CreateChatCompletionStreamResponse",
        "error": "ErrorResponse",
    }),
    "gemini": ("gemini-openapi.json", {
        "request": "GenerateContentRequest",
        "response": "GenerateContentResponse",
        "stream_event": "GenerateContentResponse",
    }),
}

def nullable(node):
    """OpenAPI's `nullable: true` (not JSON Schema) becomes a `null` alternative."""
    if isinstance(node, list):
        return [nullable(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: nullable(v) for k, v in node.items()}
    if node.pop("nullable", False) is True:
        return {"anyOf": [node, {"type": "null"}]}
    return node


REF = re.compile(r'#/components/schemas/([A-Za-z0-9_.\-]+)')


def main():
    specs = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parent.parent.parent / "shared" / "specs")
    out_dir = pathlib.Path(__file__).parent.parent / "tests" / "fixtures" / "specs"
    out_dir.mkdir(parents=True, exist_ok=True)
    for api, (file, roots) in ROOTS.items():
        spec = json.loads((specs / file).read_text())
        schemas = spec["components"]["schemas"]
        seen, stack = set(), list(roots.values())
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            stack.extend(REF.findall(json.dumps(schemas[name])))
        doc = {
            "$comment": f"Extracted from {file} ({spec['info'].get('title')} {spec['info'].get('version')}) by scripts/extract-api-schemas.py",
            "roots": {kind: {"$ref": f"#/components/schemas/{name}"} for kind, name in roots.items()},
            "components": {"schemas": {name: nullable(schemas[name]) for name in sorted(seen)}},
        }
        (out_dir / f"{api}.schema.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        print(f"{api}: {len(seen)} schemas")


if __name__ == "__main__":
    main()
