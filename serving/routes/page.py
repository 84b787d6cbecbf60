"""The jeweller's page, its static files, and the API docs: public, and served from this package.

No page loads anything from elsewhere (the docs' Swagger UI files come from the pinned
`fastapi-swagger` wheel), so the docs work offline and the Content-Security-Policy can forbid
inline script and every other origin.
"""

from __future__ import annotations

import html
from importlib import resources
from pathlib import Path
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from serving.errors import NotFoundError

WEB: Final = Path(__file__).resolve().parents[1] / "web"
SWAGGER_UI: Final = resources.files("fastapi_swagger") / "resources"
STATIC_FILES: Final = {
    "app.js": (WEB / "app.js", "text/javascript; charset=utf-8"),
    "page.css": (WEB / "page.css", "text/css; charset=utf-8"),
    "docs.js": (WEB / "docs.js", "text/javascript; charset=utf-8"),
    "swagger-ui.css": (SWAGGER_UI / "swagger-ui.css", "text/css; charset=utf-8"),
    "swagger-ui-bundle.js": (SWAGGER_UI / "swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
}
DOCS_PAGE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} — API docs</title>
<link rel="stylesheet" href="{root}/static/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{root}/openapi.json"></div>
<script src="{root}/static/swagger-ui-bundle.js"></script>
<script src="{root}/static/docs.js"></script>
</body>
</html>
"""

router = APIRouter(include_in_schema=False)


def _root(request: Request) -> str:
    """The stage prefix (/prod behind API Gateway), for absolute links that work with or without
    a trailing slash."""
    return html.escape(str(request.scope.get("root_path", "")).rstrip("/"))


@router.get("/", response_class=HTMLResponse)
async def web_page(request: Request) -> HTMLResponse:
    return HTMLResponse((WEB / "index.html").read_text().replace("{root}", _root(request)))


@router.get("/static/{name}")
async def static_file(name: str) -> Response:
    known = STATIC_FILES.get(name)
    if known is None:
        raise NotFoundError(f"No static file {name!r}.")
    path, media_type = known
    return Response(
        path.read_bytes(), media_type=media_type, headers={"cache-control": "max-age=300"}
    )


@router.get("/docs", response_class=HTMLResponse)
async def api_docs(request: Request) -> HTMLResponse:
    page = DOCS_PAGE.format(title=html.escape(request.app.title), root=_root(request))
    return HTMLResponse(page)
