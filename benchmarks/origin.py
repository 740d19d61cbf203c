"""nginx as the HTTP origin of remote originals: serving a directory on loopback.

The service reads remote originals from an HTTP origin (``--originals
http://...``); here that origin is Debian's nginx serving the corpus
directory as static files, the way a CMS's uploads or a bucket's website
endpoint would: ``sendfile on``, nginx's default strong ``ETag`` and
``Last-Modified`` (so revalidation is a real conditional request, answered
``304``), on 127.0.0.1 at a free port, configured by a minimal
``nginx.conf`` written into a scratch directory (``daemon off``, its pid,
logs and temp paths there too). ``scripts/install-deps.sh nginx`` installs
it when missing.

The access log (``access.log``, one status per line) counts what the origin
was asked: ``Nginx.requests()`` after a load run says how many downloads
and revalidations it cost.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections import Counter
from dataclasses import dataclass

from . import competitors

CONFIG = """\
# Written by benchmarks/origin.py: a static origin for remote originals.
worker_processes 1;
daemon off;
{user}pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{
    worker_connections 1024;
}}
http {{
    default_type application/octet-stream;
    types {{
        image/jpeg jpg jpeg;
        image/png png;
        image/webp webp;
    }}
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    etag on;
    log_format status '$status $body_bytes_sent $request_uri';
    access_log {work}/access.log status;
{temp_paths}    server {{
        listen 127.0.0.1:{port};
        root {root};
        location = /nginx-health {{
            access_log off;
            return 200 "ok\\n";
        }}
    }}
}}
"""

_TEMP_KINDS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def config(root: str, port: int, work: str, *, as_root: bool) -> str:
    """The nginx.conf serving ``root`` on 127.0.0.1:``port``, every file it
    writes under ``work``. As root, its worker would drop to ``nobody``,
    who may not read the corpus: ``user root`` keeps it readable."""
    for path in (root, work):
        if not os.path.isabs(path) or any(c in path for c in " ;{}\"'\n"):
            raise ValueError(f"not a path nginx.conf can take as is: {path!r}")
    temp_paths = "".join(f"    {kind}_temp_path {work}/{kind}-temp;\n" for kind in _TEMP_KINDS)
    return CONFIG.format(
        user="user root;\n" if as_root else "",
        work=work,
        port=port,
        root=root.rstrip("/") or "/",
        temp_paths=temp_paths,
    )


def statuses(access_log: str) -> Counter[str]:
    """How many requests the origin answered, by status, from the lines of
    ``access.log`` (``log_format status``: ``<status> <bytes> <uri>``)."""
    found: Counter[str] = Counter()
    for line in access_log.splitlines():
        fields = line.split()
        if fields and fields[0].isdigit():
            found[fields[0]] += 1
    return found


def find_nginx() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in ("/usr/sbin/nginx", "/sbin/nginx"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def ensure_installed() -> str:
    """nginx's path, installed from Debian's packages first when missing."""
    found = find_nginx()
    if found is None:
        script = os.path.join(competitors.ROOT, "scripts", "install-deps.sh")
        subprocess.run([script, "nginx"], check=True)
        found = find_nginx()
    if found is None:
        raise RuntimeError("nginx is missing: install it (apt-get install nginx)")
    return found


@dataclass(slots=True)
class Nginx:
    """A running nginx origin: its process, URL and scratch directory."""

    process: subprocess.Popen[bytes]
    port: int
    work: str
    root: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def settings(self) -> dict[str, object]:
        return {
            "command": f"nginx -c {self.work}/nginx.conf (benchmarks/origin.py)",
            "root": self.root,
            "config": "worker_processes 1, sendfile on, etag on (default), loopback",
        }

    def requests(self) -> Counter[str]:
        """The requests answered so far, by status."""
        try:
            with open(os.path.join(self.work, "access.log")) as handle:
                return statuses(handle.read())
        except FileNotFoundError:
            return Counter()

    def wait_ready(self, timeout: float = 30.0) -> None:
        competitors.wait_until_ready(
            self.process, self.base_url + "/nginx-health", "nginx", timeout, interval=0.1
        )

    def stop(self) -> None:
        """SIGQUIT (graceful) to the nginx we started, then SIGKILL."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(root: str, work: str) -> Nginx:
    """nginx serving ``root`` on a free loopback port, ready; its files in
    ``work`` (created)."""
    binary = ensure_installed()
    root, work = os.path.abspath(root), os.path.abspath(work)
    os.makedirs(work, exist_ok=True)
    port = competitors.free_port()
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as handle:
        handle.write(config(root, port, work, as_root=os.geteuid() == 0))
    argv = [binary, "-p", work, "-c", conf, "-e", os.path.join(work, "error.log")]
    subprocess.run([*argv, "-t", "-q"], check=True, capture_output=True)
    with open(os.path.join(work, "nginx.out"), "ab") as log:
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    server = Nginx(process, port, work, root)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server
