"""The container's HEALTHCHECK (deploy/Dockerfile): is this fairq process alive?

One image runs every process, and a process serves ``/livez`` on one of two ports: the
gateway on ``FAIRQ_HTTP_PORT`` (8080), the admitter and the allocator on
``FAIRQ_HEALTH_PORT`` (the image sets 9100). Whichever answers 200 makes the container
healthy. Liveness only: readiness (``/readyz``) is for the load balancer to route by,
not a reason to restart a process (docs/operators.md: "Health and supervision").
"""

import os
import sys
import urllib.request

PORTS = (os.environ.get("FAIRQ_HTTP_PORT") or "8080", os.environ.get("FAIRQ_HEALTH_PORT") or "9100")


def alive(port: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(0 if any(alive(port) for port in PORTS) else 1)
