"""The API reference: ``GET /api/reference``, the OpenAPI document as one HTML page.

Rendered here, on the server, from the document the gateway serves at
``/api/openapi.json`` (``gateway.openapi``), once per app: every operation with its
parameters, body, answers and error codes, then every schema. No script, one inline
style block allowed by its hash, nothing from another host.
"""

from __future__ import annotations

import html
from typing import Any

import orjson
from aiohttp import web

from gateway.contracts import HTML, operation
from gateway.page import Page, page_of, page_response

REFERENCE_PAGE: web.AppKey[Page] = web.AppKey("reference_page", Page)
routes = web.RouteTableDef()

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;
color:#1b1f24;background:#fff}
h1{font-size:1.6rem}h2{margin-top:2.5rem;border-bottom:1px solid #ccd}h3{font-size:1.05rem;
margin:1.6rem 0 .3rem}code,.path{font-family:ui-monospace,monospace}
.method{display:inline-block;min-width:4.2rem;font-weight:700}
table{border-collapse:collapse;margin:.3rem 0 .8rem;width:100%}
td,th{border:1px solid #dde;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f4f8}.muted{color:#4d5560}nav a{margin-right:1rem}
@media (prefers-color-scheme:dark){body{background:#111418;color:#e6e8eb}
th{background:#1f242b}td,th{border-color:#333a44}.muted{color:#aab2bd}a{color:#8cb4ff}}
"""


@routes.get("/api/reference")
@operation("this API's reference (HTML)", {200: HTML}, backend=False, tag="documents")
async def reference_page(request: web.Request) -> web.Response:
    return page_response(request.app[REFERENCE_PAGE])


def install(app: web.Application, document: dict[str, Any]) -> None:
    """The page of ``document`` (rendered once)."""
    app[REFERENCE_PAGE] = page_of(render(document))


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _anchor(name: str) -> str:
    return "schema-" + "".join(c if c.isalnum() else "-" for c in name)


def type_text(schema: dict[str, Any]) -> str:
    """A schema in a few words (HTML): a link for a reference, its constraints listed."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f'<a href="#{_anchor(name)}">{_e(name)}</a>'
    for key in ("anyOf", "oneOf"):
        if key in schema and all(isinstance(s, dict) for s in schema[key]):
            parts = [type_text(s) for s in schema[key] if s]
            if parts:
                return " or ".join(parts)
    if "enum" in schema:
        return "one of " + ", ".join(
            f"<code>{_e(orjson.dumps(v).decode())}</code>" for v in schema["enum"]
        )
    if "const" in schema:
        return f"<code>{_e(orjson.dumps(schema['const']).decode())}</code>"
    kind = schema.get("type", "any")
    text = " or ".join(kind) if isinstance(kind, list) else str(kind)
    if kind == "array" and isinstance(schema.get("items"), dict):
        text = f"array of {type_text(schema['items'])}"
    if schema.get("format"):
        text += f" ({_e(schema['format'])})"
    limits = [
        f"{word} {_e(schema[key])}"
        for key, word in (
            ("minimum", "&ge;"),
            ("maximum", "&le;"),
            ("minLength", "length &ge;"),
            ("maxLength", "length &le;"),
            ("minItems", "items &ge;"),
            ("maxItems", "items &le;"),
            ("pattern", "matching"),
        )
        if key in schema
    ]
    return _e(text) if not limits else f"{_e(text)}, {', '.join(limits)}"


def _fields(schema: dict[str, Any]) -> str:
    props = schema.get("properties")
    if not isinstance(props, dict):
        return f"<p>{type_text(schema)}</p>"
    required = set(schema.get("required", []))
    rows = "".join(
        f"<tr><td><code>{_e(name)}</code></td><td>{type_text(sub)}</td>"
        f"<td>{'yes' if name in required else ''}</td>"
        f"<td class=muted>{_e(sub.get('description', ''))}</td></tr>"
        for name, sub in props.items()
    )
    extra = ""
    if "anyOf" in schema and all("required" in s for s in schema["anyOf"]):
        names = " or ".join(f"<code>{_e(', '.join(s['required']))}</code>" for s in schema["anyOf"])
        extra = f"<p>Needs {names}.</p>"
    return (
        "<table><tr><th>field</th><th>type</th><th>required</th><th>what</th></tr>"
        f"{rows}</table>{extra}"
    )


def _operation(method: str, path: str, op: dict[str, Any]) -> str:
    parts = [
        f'<h3 id="{_e(op["operationId"])}"><span class=method>{_e(method.upper())}</span>'
        f" <span class=path>{_e(path)}</span></h3><p>{_e(op['summary'])}</p>"
    ]
    if "security" in op:
        ways = " or ".join(f"<code>{_e(name)}</code>" for way in op["security"] for name in way)
        parts.append(f"<p>Credential: {ways} (see the security schemes).</p>")
    params = op.get("parameters", [])
    if params:
        rows = "".join(
            f"<tr><td><code>{_e(p['name'])}</code></td><td>{_e(p['in'])}</td>"
            f"<td>{type_text(p['schema'])}</td><td class=muted>{_e(p.get('description', ''))}"
            "</td></tr>"
            for p in params
        )
        parts.append(
            f"<table><tr><th>parameter</th><th>in</th><th>type</th><th>what</th></tr>{rows}</table>"
        )
    body = op.get("requestBody")
    if body is not None:
        optional = "" if body["required"] else " (optional)"
        body_schema = body["content"]["application/json"]["schema"]
        parts.append(f"<p>Body{optional}: {type_text(body_schema)}</p>")
    answers = []
    for status, answer in op["responses"].items():
        content: dict[str, Any] = answer.get("content", {})
        media = ", ".join(content)
        first: dict[str, Any] = next(iter(content.values()), {})
        schema: dict[str, Any] = first.get("schema", {})
        if status.startswith(("4", "5")):
            codes = schema["properties"]["error"]["properties"]["code"]["enum"]
            lines = answer["description"].split("\n")
            what = "<br>".join(_e(line) for line in lines)
            if len(codes) > len(lines):
                what += f"<br><span class=muted>codes: {_e(', '.join(codes))}</span>"
        else:
            what = type_text(schema) if "json" in media else _e(media)
        answers.append(f"<tr><td>{_e(status)}</td><td>{what}</td></tr>")
    parts.append(f"<table><tr><th>status</th><th>answer</th></tr>{''.join(answers)}</table>")
    return "".join(parts)


def render(document: dict[str, Any]) -> str:
    """The reference page of an OpenAPI document (self-contained HTML)."""
    by_tag: dict[str, list[str]] = {}
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            by_tag.setdefault(op["tags"][0], []).append(_operation(method, path, op))
    nav = "".join(f'<a href="#tag-{_e(tag)}">{_e(tag)}</a>' for tag in by_tag)
    sections = "".join(
        f'<h2 id="tag-{_e(tag)}">{_e(tag)}</h2>{"".join(ops)}' for tag, ops in by_tag.items()
    )
    schemas = "".join(
        f'<h3 id="{_anchor(name)}">{_e(name)}</h3>'
        f"<p class=muted>{_e(schema.get('description', ''))}</p>{_fields(schema)}"
        for name, schema in document["components"]["schemas"].items()
    )
    info = document["info"]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(info['title'])} API reference</title><style>{STYLE}</style></head><body>"
        f"<h1>{_e(info['title'])} {_e(info['version'])}: API reference</h1>"
        f"<p>{_e(info['description'])}</p>"
        '<p>The same as <a href="/api/openapi.json">/api/openapi.json</a> (OpenAPI 3.1).</p>'
        f'<nav>{nav}<a href="#schemas">schemas</a></nav>{sections}'
        f'<h2 id="schemas">schemas</h2>{schemas}'
        f'<h2 id="security">security schemes</h2>{_schemes(document)}</body></html>'
    )


def _schemes(document: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td><code>{_e(name)}</code></td><td>{_e(_where(s))}</td>"
        f"<td class=muted>{_e(s.get('description', ''))}</td></tr>"
        for name, s in document["components"]["securitySchemes"].items()
    )
    return f"<table><tr><th>scheme</th><th>how</th><th>what</th></tr>{rows}</table>"


def _where(scheme: dict[str, Any]) -> str:
    if scheme["type"] == "http":
        return "Authorization: Bearer <token>"
    return f"{scheme['in']} {scheme['name']}"
