"""The `docker` command Facet gives LocalStack (DOCKER_CMD) on a machine without a Docker engine.

LocalStack checks for Docker (`docker ps`) and pulls a function's runtime image when a Lambda
function is created; without an engine the function, and a CloudFormation stack holding it,
fails. This answers those two with success (no containers, nothing to pull), so functions can be
created and deployed; anything else, such as creating the container that would run a function,
fails with a message that says why. Standalone: LocalStack runs it with its own Python.
"""

import sys

ANSWERED = {"ps", "pull"}

if __name__ == "__main__":
    if sys.argv[1:2] and sys.argv[1] in ANSWERED:
        sys.exit(0)
    sys.stderr.write(
        f"docker {' '.join(sys.argv[1:3])}: no Docker engine on this machine. LocalStack can "
        "create Lambda functions here but not run them (Facet runs them on its own local "
        "Lambda compute)\n"
    )
    sys.exit(1)
