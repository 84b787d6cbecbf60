"""SageMaker hosting entry point: `docker run <image> serve` starts the app on port 8080.

SageMaker's container contract: answer GET /ping and POST /invocations on 0.0.0.0:8080 inside the
container (the hosting app serves those two routes and nothing else). It follows the model
registry exactly as the Lambda does.
"""

from __future__ import annotations

import os

import uvicorn


def main() -> None:
    uvicorn.run(
        "serving.app:default_hosting_app",
        factory=True,
        host=os.environ.get("SAGEMAKER_BIND_TO_HOST", "0.0.0.0"),
        port=int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080")),
        workers=int(os.environ.get("SAGEMAKER_MODEL_SERVER_WORKERS", "1")),
    )


if __name__ == "__main__":
    main()
