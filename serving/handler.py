"""The Lambda entry point: the FastAPI app behind API Gateway via Mangum.

API Gateway's REST events (payload 1.0) carry the path without the stage (/v1/prices), while
browsers address /prod/v1/prices; HTTP API events (payload 2.0) with a named stage carry it in
rawPath. Either way the stage becomes the ASGI root_path, so routing sees /v1/prices, and /docs
and the web page link to /prod/... and work behind the execute-api URL.
"""

from __future__ import annotations

import contextlib
import os
import signal
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
        if scope.get("type") == "http" and stage and stage != "$default":
            prefix = f"/{stage}"
            if event.get("version") == "2.0":
                path = str(scope["path"])
                if path == prefix or path.startswith(prefix + "/"):
                    scope = {**scope, "root_path": prefix}
            elif str(context.get("path") or "").startswith(prefix):
                scope = {**scope, "root_path": prefix, "path": f"{prefix}{scope['path']}"}
        await self.app(scope, receive, send)


def _flush_then_exit(*_: object) -> None:
    """Lambda sends SIGTERM before recycling an environment when an extension is registered
    (e.g. Lambda Insights): write the buffered inference rows, then end as SIGTERM would."""
    try:
        default_app().state.inference_log.flush()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


handler = Mangum(StageRootPath(default_app()), lifespan="off")
with contextlib.suppress(ValueError):  # only the main thread may install signal handlers
    signal.signal(signal.SIGTERM, _flush_then_exit)
