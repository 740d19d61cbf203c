"""Scale-out: real nginx with deploy/nginx.conf in front of three replicas.

Each replica is ``python -m service`` on its own loopback port with its own
cache directory, so the directory that gains a file tells which replica
rendered a URL. nginx runs Debian's package with the shipped configuration,
rewritten only where a test must differ (loopback addresses, paths under
tmp_path, and ``proxy_cache off`` where the test needs every request to
reach a replica).

``make test`` runs this when nginx is installed and skips it otherwise;
``make test-container`` installs nginx (scripts/install-deps.sh) and sets
IMAGE_FACTORY_REQUIRE_NGINX=1, which turns a missing nginx into a failure.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks.origin import find_nginx

from .conftest import decode
from .serving import children, free_port, wait_until_answering, wait_until_healthy
from .waiting import eventually

ROOT = Path(__file__).parent.parent
SHIPPED_CONFIG = ROOT / "deploy" / "nginx.conf"
DEADLINE_SECONDS = 30


NGINX = find_nginx()
REQUIRED = os.environ.get("IMAGE_FACTORY_REQUIRE_NGINX") == "1"

pytestmark = pytest.mark.skipif(
    NGINX is None and not REQUIRED,
    reason="nginx is not installed; `make test-container` installs it "
    "(scripts/install-deps.sh nginx) and runs this test",
)


@dataclass
class Replica:
    port: int
    cache_dir: Path
    process: subprocess.Popen[bytes]

    def rendered(self) -> int:
        """How many renders this replica's disk cache holds."""
        objects = self.cache_dir / "objects"
        return sum(len(files) for _, _, files in os.walk(objects)) if objects.exists() else 0


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[list[Replica]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGE_FACTORY_")}
    started: list[Replica] = []
    try:
        for number in range(3):
            port = free_port()
            cache_dir = tmp_path / f"cache-{number}"
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "service",
                    "--port",
                    str(port),
                    "--cache-dir",
                    str(cache_dir),
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            started.append(Replica(port, cache_dir, process))
        for replica in started:  # started in parallel, then waited for
            wait_until_healthy(f"http://127.0.0.1:{replica.port}", replica.process)
        yield started
    finally:
        for replica in started:
            if replica.process.poll() is None:
                replica.process.terminate()
        for replica in started:
            replica.process.wait(timeout=60)


def loopback_config(
    work: Path, listen_port: int, replica_ports: list[int], *, proxy_cache: bool
) -> str:
    """deploy/nginx.conf with addresses and paths a test can use."""
    text = SHIPPED_CONFIG.read_text()

    def sub(pattern: str, replacement: str, expected: int = 1) -> None:
        nonlocal text
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        assert count == expected, f"deploy/nginx.conf: {pattern!r} matched {count} times"

    # As root, nginx's workers would drop to `nobody`, who cannot enter tmp_path.
    sub(r"^user .*$", "user root;" if os.geteuid() == 0 else "")
    sub(r"^pid .*;$", f"pid {work}/nginx.pid;")
    sub(r"^error_log .*;$", f"error_log {work}/error.log info;")
    sub(r"access_log /dev/stdout ", f"access_log {work}/access.log ")
    sub(r"listen 8080;", f"listen 127.0.0.1:{listen_port};")
    ports = iter(replica_ports)
    text, count = re.subn(
        r"server replica-\d+:8080", lambda _: f"server 127.0.0.1:{next(ports)}", text
    )
    assert count == len(replica_ports), "deploy/nginx.conf must list one server per replica"
    sub(r"proxy_cache_path /var/cache/nginx/image-factory", f"proxy_cache_path {work}/proxy-cache")
    temp_paths = "".join(
        f"    {kind}_temp_path {work}/{kind}-temp;\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    sub(r"^http \{\n", "http {\n" + temp_paths)
    if not proxy_cache:
        sub(r"proxy_cache images;", "proxy_cache off;")
    return text


@contextmanager
def nginx_in_front(work: Path, replicas: list[Replica], *, proxy_cache: bool) -> Iterator[str]:
    assert NGINX is not None, "nginx is required here (IMAGE_FACTORY_REQUIRE_NGINX=1) but missing"
    work.mkdir()
    port = free_port()
    config = work / "nginx.conf"
    config.write_text(
        loopback_config(work, port, [r.port for r in replicas], proxy_cache=proxy_cache)
    )
    argv = [NGINX, "-p", str(work), "-c", str(config), "-e", str(work / "error.log")]
    checked = subprocess.run([*argv, "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen(
        [*argv, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(
            f"{base}/nginx-health", process, DEADLINE_SECONDS, exited="nginx exited at start"
        )
        yield base
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful: finish requests, then exit
        try:
            process.wait(timeout=DEADLINE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=DEADLINE_SECONDS) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def from_nginx_cache(url: str) -> tuple[int, dict[str, str], bytes]:
    """The answer once nginx serves ``url`` from its cache: it stores a
    response after sending it, so the request right after the first may
    still reach the upstream (a MISS that the upstream answers as a HIT)."""

    def cached() -> tuple[int, dict[str, str], bytes] | None:
        answer = get(url)
        return answer if answer[1]["X-Proxy-Cache"] == "HIT" else None

    return eventually(cached, DEADLINE_SECONDS, message=f"nginx never cached {url}")


def picture(base: str, width: int) -> str:
    return f"{base}/picture/retina.jpg?w={width}&format=jpeg"


def test_urls_stick_to_one_replica_spread_over_all_and_fail_over(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    with nginx_in_front(tmp_path / "nginx", replicas, proxy_cache=False) as base:
        widths = range(100, 160)
        owner: dict[int, int] = {}
        for width in widths:
            before = [r.rendered() for r in replicas]
            status, headers, body = get(picture(base, width))
            assert status == 200, body
            assert headers["X-Cache"] == "MISS"
            assert decode(body).width == width
            gained = [i for i, r in enumerate(replicas) if r.rendered() != before[i]]
            assert len(gained) == 1, f"w={width}: rendered by replicas {gained}"
            owner[width] = gained[0]

        # Same URL, same replica: its own disk cache answers, nobody renders.
        counts = [r.rendered() for r in replicas]
        for width in widths:
            for _ in range(2):
                status, headers, _ = get(picture(base, width))
                assert (status, headers["X-Cache"]) == (200, "HIT"), f"w={width}"
        assert [r.rendered() for r in replicas] == counts

        # Spread: every replica holds a fair share of the 60 URLs.
        shares = [sum(1 for o in owner.values() if o == i) for i in range(3)]
        assert min(shares) >= len(widths) // 10, f"URLs per replica: {shares}"

        # Kill the busiest replica outright, its supervisor and its worker,
        # as a machine or container going away would; every request is
        # still answered.
        victim = max(range(3), key=lambda i: shares[i])
        for worker in children(replicas[victim].process.pid):
            os.kill(worker, signal.SIGKILL)
        replicas[victim].process.kill()
        replicas[victim].process.wait(timeout=DEADLINE_SECONDS)
        for width in [*widths, *range(200, 230)]:
            status, headers, body = get(picture(base, width))
            assert status == 200, f"w={width} after replica {victim} died: {status} {body!r}"
            assert decode(body).width == width
            if owner.get(width, victim) != victim:
                # Consistent hashing: URLs of the survivors did not move.
                assert headers["X-Cache"] == "HIT", f"w={width} moved off its replica"
        error_log = (tmp_path / "nginx" / "error.log").read_text()
        dead = f"127.0.0.1:{replicas[victim].port}"
        assert dead in error_log, "nginx never tried the dead replica"


def test_shipped_proxy_cache_answers_repeats_itself(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    with nginx_in_front(tmp_path / "nginx", replicas, proxy_cache=True) as base:
        url = picture(base, 321)
        first = get(url)
        second = from_nginx_cache(url)
        assert first[0] == second[0] == 200
        assert first[1]["X-Proxy-Cache"] == "MISS"
        assert first[2] == second[2]
        assert sum(r.rendered() for r in replicas) == 1
        # Metrics are for scraping replicas directly, not for the public edge.
        assert get(f"{base}/metrics")[0] == 404
        # format=auto varies by Accept: each Accept gets its own format.
        auto = f"{base}/picture/retina.jpg?w=64&format=auto"
        for accept, content_type in [("image/webp", "image/webp"), ("image/avif", "image/avif")]:
            for _ in range(2):
                request = urllib.request.Request(auto, headers={"Accept": accept})
                with urllib.request.urlopen(request, timeout=DEADLINE_SECONDS) as response:
                    assert response.headers["Content-Type"] == content_type


def purge_recipe(cache_dir: Path, path: str) -> str:
    """docs/purge.md's shell lines that delete an original's files from
    nginx's cache, for ``path`` in ``cache_dir``: the test runs the recipe
    as the documentation gives it."""
    text = (ROOT / "docs" / "purge.md").read_text()
    found = re.search(r"^    key='KEY: .*?\n(?:    .*\n)+", text, flags=re.MULTILINE)
    assert found is not None, "docs/purge.md has no nginx purge recipe"
    recipe = found.group(0).replace("photos/cat.jpg", path)
    return recipe.replace("/var/cache/nginx/image-factory", str(cache_dir))


def test_after_a_purge_the_documented_recipe_refreshes_nginx(
    tmp_path: Path, replicas: list[Replica], capsys: pytest.CaptureFixture[str]
) -> None:
    """The replicas' purge leaves nginx's copy; deleting its cache files as
    docs/purge.md says makes the next request reach a replica, which
    renders anew. /admin/ is never proxied."""
    from service.cli import main  # noqa: PLC0415 - the command, in this process

    with nginx_in_front(tmp_path / "nginx", replicas, proxy_cache=True) as base:
        url = picture(base, 333)
        assert get(url)[1]["X-Proxy-Cache"] == "MISS"
        from_nginx_cache(url)
        request = urllib.request.Request(f"{base}/admin/purge", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=DEADLINE_SECONDS)
        assert refused.value.code == 404
        refused.value.close()
        for replica in replicas:
            assert main(["purge", "retina.jpg", "--cache-dir", str(replica.cache_dir)]) == 0
        removed = [
            json.loads(line)["removed"]["variants"] for line in capsys.readouterr().out.splitlines()
        ]
        assert sum(removed) == 1
        assert get(url)[1]["X-Proxy-Cache"] == "HIT"  # nginx still has its copy
        recipe = purge_recipe(tmp_path / "nginx" / "proxy-cache", "retina.jpg")
        subprocess.run(["bash", "-euc", recipe], check=True)
        status, headers, _ = get(url)
        assert (status, headers["X-Proxy-Cache"], headers["X-Cache"]) == (200, "MISS", "MISS")
