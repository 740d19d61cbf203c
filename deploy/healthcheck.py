"""Container HEALTHCHECK: exit 0 when /healthz answers 200, else 1.

Reads the same ``IMAGE_FACTORY_*`` variables as the service, so a port or
host changed through the environment is still the one checked. Standard
library only: the image has no curl.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    host = os.environ.get("IMAGE_FACTORY_HOST", "127.0.0.1").strip()
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - a wildcard bind is checked on loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    port = os.environ.get("IMAGE_FACTORY_PORT", "8080").strip()
    url = f"http://{host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as error:
        # 503 while draining is an HTTPError: unhealthy, as it should be.
        print(f"healthcheck: {url}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
