"""The `docker` command Facet gives LocalStack (DOCKER_CMD) on a machine without a Docker engine.

LocalStack pulls a function's runtime image when the function is created; without an engine that
fails and the function (and a CloudFormation stack holding it) fails with it. This answers
`pull` with success, so functions can be created and deployed; everything else (running a
function) fails with a message that says why. Standalone: LocalStack runs it with its own Python.
"""

import sys

if __name__ == "__main__":
    command = sys.argv[1:2]
    if command == ["pull"]:
        sys.exit(0)
    sys.stderr.write(
        "no Docker engine on this machine: LocalStack can create Lambda functions here "
        "but not run them (Facet runs them on its own local Lambda compute)\n"
    )
    sys.exit(1)
