"""What a client generator needs from the OpenAPI document: every JSON body, request or
response, of every route (core and plugin) is a named schema whose fields all have a type.

:func:`untyped_operations` lists the places where that is not so; the test kit
(:func:`crmkit.testing.api_client`) fails a test whose CRM serves such a route, so a
plugin's own tests catch a handler that answers ``dict[str, Any]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

#: Litestar names a schema ``<module>_<Class>`` when two types share a class name; client
#: generators then find two models of one name.
_CLASHING_NAME = re.compile(r"^[a-z][a-z0-9_]*_[A-Z]")
_METHODS = ("get", "put", "post", "patch", "delete", "head", "options")
_REF_PREFIX = "#/components/schemas/"


def _is_json(media_type: str) -> bool:
    kind = media_type.split(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


def _untyped_reason(schema: Mapping[str, Any]) -> str | None:
    """Why ``schema`` (a property, an item) has no usable type, or None."""
    if "$ref" in schema:
        return None
    for key in ("oneOf", "anyOf", "allOf"):
        if key in schema:
            for branch in schema[key]:
                reason = _untyped_reason(branch)
                if reason:
                    return reason
            return None
    kinds = schema.get("type")
    if kinds is None and "enum" not in schema and "const" not in schema:
        return "has no type"
    if isinstance(kinds, list) and len([k for k in kinds if k != "null"]) > 1:
        return f"is one of several types ({', '.join(kinds)})"
    if kinds == "array" or (isinstance(kinds, list) and "array" in kinds):
        items = schema.get("items")
        if not isinstance(items, Mapping) or not items:
            return "is an array of untyped items"
        return _untyped_reason(items)
    if kinds == "object" or (isinstance(kinds, list) and "object" in kinds):
        if schema.get("properties"):
            for prop in schema["properties"].values():
                reason = _untyped_reason(prop)
                if reason:
                    return reason
            return None
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping) and extra and not _untyped_reason(extra):
            return None
        return "is an object of untyped members"
    return None


def _body_problems(schema: Mapping[str, Any], *, request: bool) -> Iterator[str]:
    """A body must be a named schema, or an array of one; a request body may also be a map
    of typed values (the fields of a record whose entity a parameter names)."""
    if "$ref" in schema:
        return
    if schema.get("type") == "array" and "$ref" in (schema.get("items") or {}):
        return
    branches = schema.get("oneOf") or schema.get("anyOf")
    if branches and all("$ref" in b or b.get("type") == "null" for b in branches):
        return  # a named body or none (an optional body)
    reason = _untyped_reason(schema)
    if reason:
        yield reason
    elif not (request and schema.get("type") == "object"):
        yield "is not a named schema"


def _component_problems(components: Mapping[str, Any]) -> Iterator[str]:
    for name, schema in sorted(components.items()):
        if _CLASHING_NAME.match(name):
            yield (
                f"schema {name}: two types share the name {name.split('_')[-1]!r}; "
                "rename one (client generators need one model per name)"
            )
        for field, prop in sorted((schema.get("properties") or {}).items()):
            reason = _untyped_reason(prop)
            if reason:
                yield f"schema {name}: field {field!r} {reason}"


def untyped_operations(document: Mapping[str, Any]) -> list[str]:
    """The places in an OpenAPI document where a JSON body (request or response) is not a
    named, typed schema, one line each (``POST /plugins/x/y 201: the response is not a
    named schema``); empty when a client generator can type every route."""
    problems: list[str] = []
    for path, item in sorted((document.get("paths") or {}).items()):
        for method in _METHODS:
            operation = item.get(method)
            if not isinstance(operation, Mapping):
                continue
            where = f"{method.upper()} {path}"
            body = operation.get("requestBody") or {}
            for media_type, content in (body.get("content") or {}).items():
                if _is_json(media_type):
                    for reason in _body_problems(content.get("schema") or {}, request=True):
                        problems.append(f"{where}: the request body {reason}")
            for status, response in sorted((operation.get("responses") or {}).items()):
                for media_type, content in (response.get("content") or {}).items():
                    if _is_json(media_type):
                        for reason in _body_problems(content.get("schema") or {}, request=False):
                            problems.append(f"{where} {status}: the response {reason}")
    schemas = (document.get("components") or {}).get("schemas") or {}
    problems.extend(_component_problems(schemas))
    return problems


__all__ = ["untyped_operations"]
