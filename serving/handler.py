"""The Lambda entry point: the FastAPI app behind API Gateway (REST, proxy integration) via Mangum.

API Gateway's REST events carry the path without the stage (/v1/prices), while browsers address
/prod/v1/prices. The stage becomes the ASGI root_path, so /docs and the web page link to
/prod/openapi.json and /prod/v1/... and work behind the execute-api URL.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from mangum import Mangum

from serving.app import default_app

Scope = MutableMapping[str, Any]


class StageRootPath:
    """ASGI middleware: put API Gateway's stage into root_path (and path, as ASGI expects)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        event = scope.get("aws.event") or {}
        context = event.get("requestContext") or {}
        stage = context.get("stage")
        full_path = str(context.get("path") or "")
        if (
            scope.get("type") == "http"
            and stage
            and stage != "$default"
            and full_path.startswith(f"/{stage}")
        ):
            scope = {**scope, "root_path": f"/{stage}", "path": f"/{stage}{scope['path']}"}
        await self.app(scope, receive, send)


handler = Mangum(
    StageRootPath(default_app()),
    lifespan="off",
    text_mime_types=["application/json", "text/html", "text/csv"],
)
