"""GraphiQL served entirely by the gateway: the HTML page and its pinned assets, no CDN.

The page references only ``/graphiql/static/...`` on the gateway itself, so it works in a browser that
can reach nothing else. The assets come from ``python -m aggregator.server.assets``; when they are
missing the page says how to fetch them instead of rendering blank.
"""

from __future__ import annotations

import html
import json

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from aggregator.server.assets import STATIC_DIR, assets_available

__all__ = ["STATIC_PATH", "assets_available", "graphiql_html", "graphiql_response", "graphiql_routes"]

STATIC_PATH = "/graphiql/static"

# Served file name -> content type; anything else under STATIC_PATH is a 404.
_CONTENT_TYPES = {
    "react.production.min.js": "text/javascript",
    "react-dom.production.min.js": "text/javascript",
    "graphiql.min.js": "text/javascript",
    "graphiql.min.css": "text/css",
}

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>GraphiQL - aggregator</title>
<style>html, body, #graphiql {{ height: 100%; margin: 0; }}</style>
<link rel="stylesheet" href="{static}/graphiql.min.css">
</head>
<body>
<div id="graphiql">Loading GraphiQL...</div>
<script src="{static}/react.production.min.js"></script>
<script src="{static}/react-dom.production.min.js"></script>
<script src="{static}/graphiql.min.js"></script>
<script>
const fetcher = GraphiQL.createFetcher({{ url: {endpoint} }});
ReactDOM.createRoot(document.getElementById("graphiql")).render(
  React.createElement(GraphiQL, {{ fetcher: fetcher, defaultEditorToolsVisibility: true }})
);
</script>
</body>
</html>
"""

_MISSING = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>GraphiQL assets not installed - aggregator</title></head>
<body style="font-family: sans-serif; max-width: 46em; margin: 3em auto; line-height: 1.5">
<h1>GraphiQL assets are not installed</h1>
<p>This gateway serves GraphiQL's files itself (no CDN), and they have not been fetched yet.
The GraphQL endpoint works regardless: POST queries to <code>{endpoint}</code>.</p>
<p>To install the explorer, run this once in the gateway's Python environment, then restart the
gateway and reload this page:</p>
<pre>python -m aggregator.server.assets</pre>
<p>It downloads pinned, integrity-checked packages from the npm registry (set
<code>AGGREGATOR_NPM_REGISTRY</code> to use a mirror). From a source checkout, <code>make demo</code>
and <code>make test</code> do it for you.</p>
</body>
</html>
"""


def _script_string(value: str) -> str:
    # JSON is a valid JS string literal; escaping "<" keeps "</script>" in a value from ending the block.
    return json.dumps(value).replace("<", "\\u003c")


def graphiql_html(endpoint: str = "/graphql", *, static_url: str = STATIC_PATH) -> str:
    """The GraphiQL page for ``endpoint``, or an explanation of how to fetch its assets when missing."""
    if not assets_available(STATIC_DIR):
        return _MISSING.format(endpoint=html.escape(endpoint))
    return _PAGE.format(static=html.escape(static_url), endpoint=_script_string(endpoint))


def graphiql_response(request: Request) -> HTMLResponse:
    """The page for a browser asking for the endpoint at ``request``'s path, under any mount prefix."""
    root = request.scope.get("root_path", "")
    return HTMLResponse(graphiql_html(request.url.path, static_url=f"{root}{STATIC_PATH}"))


async def _asset(request: Request) -> Response:
    name = request.path_params["name"]
    content_type = _CONTENT_TYPES.get(name)
    path = STATIC_DIR / name
    if content_type is None or not path.is_file():
        return PlainTextResponse("not found", status_code=404)
    return FileResponse(
        path,
        media_type=content_type,
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


def graphiql_routes() -> list[BaseRoute]:
    """The asset routes; mount them on the app that serves the page."""
    return [Route(f"{STATIC_PATH}/{{name}}", _asset, methods=["GET", "HEAD"])]
