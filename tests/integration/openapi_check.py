"""docs/openapi.yaml, checked: the structure OpenAPI 3.0 requires (what a generator or a
validator would trip over) and JSON Schema validation of documents against its schemas.

Debian has no OpenAPI validator package, so the structural rules that matter for this
file are checked here; the schemas themselves are validated by jsonschema (Debian's
python3-jsonschema) after the OpenAPI 3.0 `nullable` keyword is turned into JSON Schema.
Used by test_openapi.py (the spec and its examples) and test_controller.py (the status
report the real agent sent must match the spec).
"""

import copy
import re
import sys
from pathlib import Path

try:
    import jsonschema
    import yaml
except ImportError:
    # Debian's packages (scripts/deps) when the interpreter running the tests is not
    # Debian's own; both are pure Python.
    sys.path.append("/usr/lib/python3/dist-packages")
    import jsonschema
    import yaml

SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
PARAMETER_PLACES = {"query", "header", "path", "cookie"}
SCHEMA_TYPES = {"object", "array", "string", "integer", "number", "boolean"}
# OpenAPI 3.0 Schema Object keywords (JSON Schema subset plus OpenAPI's own).
SCHEMA_KEYWORDS = {
    "title", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
    "maxLength", "minLength", "pattern", "maxItems", "minItems", "uniqueItems",
    "maxProperties", "minProperties", "required", "enum", "type", "allOf", "oneOf", "anyOf",
    "not", "items", "properties", "additionalProperties", "description", "format", "default",
    "nullable", "discriminator", "readOnly", "writeOnly", "xml", "externalDocs", "example",
    "deprecated", "$ref",
}


def load_spec():
    return yaml.safe_load(SPEC_PATH.read_text())


def resolve(spec, ref):
    if not ref.startswith("#/"):
        raise AssertionError(f"only local references are used here, got {ref}")
    node = spec
    for part in ref[2:].split("/"):
        if not isinstance(node, dict) or part not in node:
            raise AssertionError(f"$ref {ref} does not resolve")
        node = node[part]
    return node


def _check_schema(spec, schema, where, problems):
    if not isinstance(schema, dict):
        problems.append(f"{where}: a schema must be an object")
        return
    if "$ref" in schema:
        if len(schema) > 1:
            problems.append(f"{where}: siblings of $ref are ignored in OpenAPI 3.0")
        try:
            resolve(spec, schema["$ref"])
        except AssertionError as error:
            problems.append(f"{where}: {error}")
        return
    for key in schema:
        if key not in SCHEMA_KEYWORDS and not key.startswith("x-"):
            problems.append(f"{where}: '{key}' is not an OpenAPI 3.0 schema keyword")
    kind = schema.get("type")
    if kind is not None and kind not in SCHEMA_TYPES:
        problems.append(f"{where}: type '{kind}' (OpenAPI 3.0 has no null type; use nullable)")
    if kind == "array" and "items" not in schema:
        problems.append(f"{where}: an array needs items")
    for name, sub in (schema.get("properties") or {}).items():
        _check_schema(spec, sub, f"{where}.{name}", problems)
    if isinstance(schema.get("additionalProperties"), dict):
        _check_schema(spec, schema["additionalProperties"], f"{where}.*", problems)
    if "items" in schema:
        _check_schema(spec, schema["items"], f"{where}[]", problems)
    for combinator in ("allOf", "oneOf", "anyOf"):
        for index, sub in enumerate(schema.get(combinator, [])):
            _check_schema(spec, sub, f"{where}.{combinator}[{index}]", problems)
    for name in schema.get("required", []):
        if "properties" in schema and name not in schema["properties"]:
            problems.append(f"{where}: required '{name}' is not a property")


def _check_parameter(spec, parameter, where, path_template, problems):
    if "$ref" in parameter:
        try:
            parameter = resolve(spec, parameter["$ref"])
        except AssertionError as error:
            problems.append(f"{where}: {error}")
            return
    for key in ("name", "in"):
        if key not in parameter:
            problems.append(f"{where}: parameter without '{key}'")
            return
    if parameter["in"] not in PARAMETER_PLACES:
        problems.append(f"{where}: parameter in '{parameter['in']}'")
    if parameter["in"] == "path":
        if parameter.get("required") is not True:
            problems.append(f"{where}: path parameter '{parameter['name']}' must be required")
        if "{" + parameter["name"] + "}" not in path_template:
            problems.append(f"{where}: path parameter '{parameter['name']}' not in {path_template}")
    if "schema" in parameter:
        _check_schema(spec, parameter["schema"], f"{where}.schema", problems)
    elif "content" not in parameter:
        problems.append(f"{where}: parameter needs schema or content")


def structure_problems(spec):
    """What makes `spec` not a valid OpenAPI 3.0 document, as readable lines."""
    problems = []
    if not re.fullmatch(r"3\.0\.\d+", str(spec.get("openapi", ""))):
        problems.append(f"openapi must be 3.0.x, got {spec.get('openapi')!r}")
    info = spec.get("info") or {}
    for key in ("title", "version"):
        if not isinstance(info.get(key), str):
            problems.append(f"info.{key} must be a string")
    paths = spec.get("paths")
    if not isinstance(paths, dict) or not paths:
        problems.append("paths must be a non-empty object")
        paths = {}
    schemes = (spec.get("components") or {}).get("securitySchemes") or {}
    for requirement in spec.get("security", []):
        for name in requirement:
            if name not in schemes:
                problems.append(f"security names unknown scheme '{name}'")
    operation_ids = set()
    for template, item in paths.items():
        if not template.startswith("/"):
            problems.append(f"path '{template}' must start with /")
        for index, parameter in enumerate(item.get("parameters", [])):
            _check_parameter(spec, parameter, f"{template}.parameters[{index}]", template, problems)
        for method, operation in item.items():
            if method in ("parameters", "summary", "description", "servers") or method.startswith("x-"):
                continue
            where = f"{method.upper()} {template}"
            if method not in METHODS:
                problems.append(f"{where}: '{method}' is not an HTTP method")
                continue
            if operation.get("operationId") in operation_ids:
                problems.append(f"{where}: duplicate operationId")
            operation_ids.add(operation.get("operationId"))
            for index, parameter in enumerate(operation.get("parameters", [])):
                _check_parameter(spec, parameter, f"{where}.parameters[{index}]", template, problems)
            responses = operation.get("responses")
            if not isinstance(responses, dict) or not responses:
                problems.append(f"{where}: no responses")
                continue
            for code, response in responses.items():
                if not (code == "default" or re.fullmatch(r"[1-5]([0-9]{2}|XX)", str(code))):
                    problems.append(f"{where}: response key '{code}'")
                if "$ref" in response:
                    try:
                        response = resolve(spec, response["$ref"])
                    except AssertionError as error:
                        problems.append(f"{where} {code}: {error}")
                        continue
                if not isinstance(response.get("description"), str):
                    problems.append(f"{where} {code}: a response needs a description")
                for media, content in (response.get("content") or {}).items():
                    if "schema" in content:
                        _check_schema(spec, content["schema"], f"{where} {code} {media}", problems)
            body = operation.get("requestBody")
            if body is not None:
                for media, content in (body.get("content") or {}).items():
                    _check_schema(spec, content.get("schema", {}), f"{where} body {media}", problems)
    for name, schema in ((spec.get("components") or {}).get("schemas") or {}).items():
        _check_schema(spec, schema, f"components.schemas.{name}", problems)
    return problems


def _to_json_schema(node):
    """OpenAPI 3.0 schema -> JSON Schema (draft 4): `nullable` becomes a null type,
    local $refs stay (resolved against the spec by the validator)."""
    if isinstance(node, list):
        return [_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _to_json_schema(value) for key, value in node.items()
           if key not in ("nullable", "example", "discriminator", "xml", "externalDocs",
                          "readOnly", "writeOnly", "deprecated")}
    if node.get("nullable") is True:
        if "type" in out:
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = list(out["enum"]) + [None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def schema_errors(spec, schema_name, document):
    """Why `document` does not match components.schemas[schema_name]."""
    converted = _to_json_schema(copy.deepcopy(spec))
    schema = dict(converted["components"]["schemas"][schema_name])
    schema["components"] = converted["components"]  # so "#/components/..." resolves
    validator = jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())
    return [f"{'/'.join(map(str, error.absolute_path)) or '(document)'}: {error.message}"
            for error in validator.iter_errors(document)]
