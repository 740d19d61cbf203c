"""``image-factory loadtest``: its statistics, progress lines and summary,
then the command itself against a real aiohttp server on loopback.

The end-to-end runs are a second process (``python -m service loadtest``),
as a user runs it; the server they load is in this test's event loop and
counts what it was asked, so the counts on both sides can be compared.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from service import loadtest
from service.cli import main as cli_main
from service.loadtest_report import format_summary, human_bytes, time_bins, write_chart

from .serving import free_port

ROOT = Path(__file__).parent.parent
RUN_SECONDS = 30  # the most an end-to-end run may take before the test fails

# -- statistics and the summary ---------------------------------------------------


def test_loadtest_statistics() -> None:
    stats = loadtest.LoadStats()
    for index in range(100):
        stats.record(200 if index % 10 else 503, float(index + 1), "HIT" if index < 75 else "miss")
    stats.fail("timeout")
    summary = stats.summary(seconds=4.0, client_cpu_seconds=1.0)
    assert summary["requests"] == 100
    assert summary["rps"] == 25.0
    assert summary["latency_ms"] == {"p50": 50.0, "p90": 90.0, "p99": 99.0, "max": 100.0}
    assert summary["statuses"] == {"200": 90, "503": 10}
    assert summary["errors"] == {"timeout": 1}
    assert summary["cache_hit_ratio"] == 0.75
    assert summary["cache"] == {"HIT": 75, "MISS": 25}
    assert summary["client_cpu_percent"] == 25.0
    # By status: shares of all 101 requests sent; the 503s were the 1st, 11th... 91st.
    rows = {row["status"]: row for row in summary["by_status"]}
    assert [row["status"] for row in summary["by_status"]] == ["200", "503", "timeout"]
    assert (rows["200"]["count"], rows["200"]["share"]) == (90, round(90 / 101, 4))
    assert rows["503"]["latency_ms"] == {"p50": 41.0, "p90": 81.0, "p99": 91.0, "max": 91.0}
    assert rows["timeout"]["count"] == 1
    assert rows["timeout"]["latency_ms"]["p50"] is None  # failed without a latency
    text = format_summary(summary)
    assert "25.0 req/s" in text
    assert re.search(r"^503\s+10\s+9\.9 %\s+41\.0\s+81\.0\s+91\.0\s+91\.0$", text, re.MULTILINE)
    assert re.search(r"^timeout\s+1\s+1\.0 %\s+-", text, re.MULTILINE)
    assert "75.0 %" in text
    assert "timeout: 1" in text


def test_loadtest_without_x_cache_or_requests() -> None:
    summary = loadtest.LoadStats().summary(seconds=1.0)
    assert summary["cache_hit_ratio"] is None
    assert summary["latency_ms"]["p50"] is None
    assert summary["by_status"] == []
    text = format_summary(summary)
    assert "n/a" in text
    assert "errors        none" in text


def test_summary_says_when_the_client_was_the_limit() -> None:
    stats = loadtest.LoadStats()
    stats.record(200, 1.0, "HIT", received=2048)
    busy = format_summary(stats.summary(seconds=1.0, client_cpu_seconds=0.95))
    assert "95.0 % of one core - the client may have been the limit" in busy
    assert "2.0 KiB of bodies (2.0 KiB/s)" in busy
    idle = format_summary(stats.summary(seconds=1.0, client_cpu_seconds=0.2))
    assert "limit" not in idle


def test_percentile_is_nearest_rank() -> None:
    values = [float(value) for value in range(1, 11)]
    assert loadtest.percentile(values, 0.5) == 5.0
    assert loadtest.percentile(values, 0.0) == 1.0
    assert loadtest.percentile(values, 1.0) == 10.0
    with pytest.raises(ValueError, match="no values"):
        loadtest.percentile([], 0.5)
    with pytest.raises(ValueError, match="within"):
        loadtest.percentile(values, 1.5)


def test_live_p99_is_close_above_the_exact_one() -> None:
    histogram = loadtest.LiveHistogram()
    assert histogram.quantile(0.99) is None
    for value in range(1, 1001):
        histogram.add(float(value))
    histogram.add(0.0)  # a latency the clock could not resolve
    live = histogram.quantile(0.99)
    exact = loadtest.percentile([0.0, *map(float, range(1, 1001))], 0.99)
    assert live is not None
    assert exact <= live <= exact * 1.045


def test_human_bytes() -> None:
    assert human_bytes(0) == "0 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(5 * 1024**3) == "5.0 GiB"
    assert human_bytes(3 * 1024**4) == "3072.0 GiB"


def test_time_bins_give_percentiles_per_slice() -> None:
    rows = time_bins([0.1, 0.2, 0.9, 1.3], [1.0, 3.0, 2.0, 5.0], width=1.0)
    assert rows == [(0.0, 3, 2.0, 3.0, 3.0), (1.0, 1, 5.0, 5.0, 5.0)]
    assert time_bins([], [], width=1.0) == []


def test_chart_is_a_png(tmp_path: Path) -> None:
    stats = loadtest.LoadStats()
    for index in range(200):
        stats.record(200, 1.0 + index % 7, "HIT", finished_s=index / 100)
    write_chart(str(tmp_path / "run.png"), stats, title="test")
    assert (tmp_path / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A run without a single answer still draws (empty axes), rather than failing.
    write_chart(str(tmp_path / "empty.png"), loadtest.LoadStats(), title="test")
    assert (tmp_path / "empty.png").stat().st_size > 0


# -- progress -----------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_mode_auto_follows_the_stream() -> None:
    assert loadtest.resolve_progress("auto", _Terminal()) == "tty"
    assert loadtest.resolve_progress("auto", io.StringIO()) == "plain"
    assert loadtest.resolve_progress("plain", _Terminal()) == "plain"
    assert loadtest.resolve_progress("none", _Terminal()) == "none"
    with pytest.raises(ValueError, match="sometimes"):
        loadtest.resolve_progress("sometimes", io.StringIO())


def test_loadtest_progress_and_base_url() -> None:
    line = loadtest.progress_line(5.0, 10.0, 100, 2, width=10)
    assert line.startswith("[#####.....]")
    assert "20.0 req/s" in line
    assert "2 errors" in line
    assert "p99 - ms" in line
    assert "p99 12.3 ms" in loadtest.progress_line(5.0, 10.0, 100, 2, 12.34)
    assert loadtest.progress_line(20.0, 10.0, 0, 0, width=4).startswith("[####]")
    assert loadtest.base_url("127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert loadtest.base_url("https://img.example/picture/x.jpg") == "https://img.example"
    with pytest.raises(loadtest.UsageError, match="not an http"):
        loadtest.base_url("ftp://img.example")


def _stats(answers: int, errors: int = 0) -> loadtest.LoadStats:
    stats = loadtest.LoadStats()
    for _ in range(answers):
        stats.record(200, 10.0, None)
    for _ in range(errors):
        stats.fail("timeout")
    return stats


def test_plain_progress_is_a_line_every_few_seconds() -> None:
    out = io.StringIO()
    progress = loadtest.Progress("plain", out, duration=10.0)
    assert progress.interval == loadtest.PLAIN_INTERVAL >= 2
    progress.show(5.0, _stats(100, 2))
    assert out.getvalue() == (
        "image-factory loadtest: 5/10 s: 100 requests, 20.0 req/s, 2 errors, p99 10.4 ms\n"
    )
    progress.finish(10.0, _stats(100, 2))  # the summary follows: no extra line in a log
    assert out.getvalue().count("\n") == 1


def test_tty_progress_redraws_one_line() -> None:
    out = io.StringIO()
    progress = loadtest.Progress("tty", out, duration=10.0)
    assert progress.interval == loadtest.TTY_INTERVAL <= 0.5
    progress.note("starting")  # nothing on screen yet: no blank line first
    progress.show(1.0, _stats(10))
    progress.show(2.0, _stats(20))
    assert out.getvalue().startswith("image-factory loadtest: starting\n\r[###")
    assert out.getvalue().count("\r") == 2
    assert out.getvalue().endswith("\x1b[K")  # no newline: the next show redraws it
    progress.note("interrupted")  # below the live line, not over it
    assert out.getvalue().endswith("\x1b[K\nimage-factory loadtest: interrupted\n")
    progress.finish(3.0, _stats(30))
    assert out.getvalue().endswith("\x1b[K\n")


def test_tty_progress_fills_on_max_requests() -> None:
    out = io.StringIO()
    progress = loadtest.Progress("tty", out, duration=100.0, max_requests=10)
    progress.show(1.0, _stats(8, 2))
    assert out.getvalue().startswith("\r[" + "#" * 30 + "]")


def test_no_progress_writes_nothing() -> None:
    out = io.StringIO()
    progress = loadtest.Progress("none", out, duration=10.0)
    progress.note("starting")
    progress.show(1.0, _stats(10))
    progress.finish(2.0, _stats(10))
    assert out.getvalue() == ""
    with pytest.raises(ValueError, match="auto"):
        loadtest.Progress("auto", out, duration=10.0)


# -- inputs and usage -------------------------------------------------------------


def test_paths_format() -> None:
    lines = [
        "# a comment",
        "",
        "  /picture/a.jpg?w=800  ",
        "picture/b.png",
        "https://img.example/picture/c.jpg?w=1&s=ab%2Fc",
        "http://img.example",
    ]
    assert loadtest.parse_paths(lines) == [
        "/picture/a.jpg?w=800",
        "/picture/b.png",
        "/picture/c.jpg?w=1&s=ab%2Fc",
        "/",
    ]
    with pytest.raises(loadtest.UsageError, match="no request paths"):
        loadtest.parse_paths(["# only a comment", "  "], "urls.txt")
    stdin = io.StringIO("/picture/a.jpg\n")
    assert loadtest.read_paths("-", stdin=stdin) == ["/picture/a.jpg"]


def test_a_missing_or_empty_paths_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.txt"
    assert loadtest.loadtest_command(["http://127.0.0.1:9", "--paths", str(missing)]) == 2
    error = capsys.readouterr().err
    assert (
        error
        == f"image-factory loadtest: cannot read paths file {missing}: No such file or directory\n"
    )
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n")
    assert loadtest.loadtest_command(["http://127.0.0.1:9", "--paths", str(empty)]) == 2
    assert capsys.readouterr().err == f"image-factory loadtest: {empty}: no request paths\n"


@pytest.mark.parametrize(
    "arguments",
    [
        ["http://127.0.0.1:9"],  # no --paths
        ["http://127.0.0.1:9", "--paths", "x", "--concurrency", "0"],
        ["http://127.0.0.1:9", "--paths", "x", "--duration", "0"],
        ["http://127.0.0.1:9", "--paths", "x", "--max-requests", "0"],
        ["http://127.0.0.1:9", "--paths", "x", "--progress", "sometimes"],
        ["http://127.0.0.1:9", "--paths", "x", "--engine", "wrk"],  # gone with wrk
    ],
)
def test_bad_flags_are_usage_errors(
    arguments: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        loadtest.loadtest_command(arguments)
    assert exit_.value.code == 2
    assert "image-factory loadtest: error:" in capsys.readouterr().err


def test_chart_without_matplotlib_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    paths = tmp_path / "urls.txt"
    paths.write_text("/picture/a.jpg\n")
    # Nothing listens there: 2, not 1, shows it gave up before any request.
    arguments = ["http://127.0.0.1:9", "--paths", str(paths), "--chart", str(tmp_path / "c.png")]
    assert loadtest.loadtest_command(arguments) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "pip install 'image-factory[chart]'" in error


def test_help_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli_main(["loadtest", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith("usage: image-factory loadtest")
    assert "Point it only at deployments you run" in text
    assert "pip install 'image-factory[chart]'" in text
    assert "The container image leaves it out" in text
    assert "--progress {auto,tty,plain,none}" in text


def test_an_unreachable_target_is_one_line_and_exit_1(tmp_path: Path) -> None:
    paths = tmp_path / "urls.txt"
    paths.write_text("/picture/a.jpg\n")
    port = free_port()  # nothing listens there
    run = subprocess.run(
        [sys.executable, "-m", "service", "loadtest", f"http://127.0.0.1:{port}", "--paths", paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
        check=False,
    )
    assert run.returncode == 1, run.stderr
    assert run.stdout == ""
    assert run.stderr == (
        f"image-factory loadtest: cannot reach http://127.0.0.1:{port}: "
        "connection refused (is anything listening there?)\n"
    )


# -- against a real server --------------------------------------------------------

BODIES = {"hit": b"h" * 1000, "miss": b"m" * 500}


class Target:
    """An image service stand-in: /p/hit-* answers 200 with X-Cache HIT,
    /p/miss-* 200 MISS, /p/slow-* only once released, anything else 404.
    It counts requests by path as they arrive."""

    def __init__(self) -> None:
        self.arrived: Counter[str] = Counter()
        self.release = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_get("/p/{name}", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.arrived[name] += 1
        kind = name.split("-", 1)[0]
        if kind == "slow":
            await self.release.wait()
            kind = "hit"
        if kind in BODIES:
            return web.Response(body=BODIES[kind], headers={"X-Cache": kind.upper()})
        return web.Response(status=404, body=b"no")


async def run_tool(*arguments: str, stdin: bytes | None = None) -> tuple[int, dict[str, Any], str]:
    """``python -m service loadtest ARGUMENTS --json``: status, summary, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service",
        "loadtest",
        *arguments,
        "--json",
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), RUN_SECONDS)
    assert process.returncode is not None
    assert "Traceback" not in err.decode(), err.decode()
    return process.returncode, json.loads(out) if out else {}, err.decode()


async def test_counts_by_status_add_up_to_what_the_server_saw(
    aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    target = Target()
    server = await aiohttp_server(target.app)
    base = f"http://127.0.0.1:{server.port}"
    paths = tmp_path / "urls.txt"
    paths.write_text(
        "# the first is also the check request\n"
        "/p/hit-a?w=800\n"
        "\n"
        "/p/miss-b\n"
        # A full URL's host is not where it goes: only its path is taken.
        "http://img.example/p/hit-c?w=1&s=ab%2Fc\n"
        "/p/gone\n"
    )
    status, result, err = await run_tool(
        base, "--paths", str(paths), "--duration", "1", "--concurrency", "4", "--progress", "plain"
    )
    assert status == 0, err
    assert f"{base} answered /p/hit-a?w=800 with 200" in err
    assert result["probe_status"] == 200
    assert result["errors"] == {}
    arrived = target.arrived.copy()
    arrived["hit-a"] -= 1  # the check request, not part of the results
    assert sum(arrived.values()) == result["requests"] > 0
    assert result["statuses"] == {
        "200": arrived["hit-a"] + arrived["miss-b"] + arrived["hit-c"],
        "404": arrived["gone"],
    }
    # In order, round-robin: no path asked for twice more than another.
    assert max(arrived.values()) - min(arrived.values()) <= 1
    hits, misses = arrived["hit-a"] + arrived["hit-c"], arrived["miss-b"]
    assert result["cache"] == {"HIT": hits, "MISS": misses}
    assert result["cache_hit_ratio"] == round(hits / (hits + misses), 4)
    assert result["bytes_received"] == 1000 * hits + 500 * misses + 2 * arrived["gone"]
    rows = {row["status"]: row for row in result["by_status"]}
    assert sum(row["count"] for row in rows.values()) == result["requests"]
    assert rows["404"]["share"] == round(arrived["gone"] / result["requests"], 4)
    assert rows["200"]["latency_ms"]["p50"] <= rows["200"]["latency_ms"]["max"]
    assert result["rps"] > 0
    assert 0 <= result["client_cpu_percent"] <= 200


async def test_max_requests_and_paths_from_stdin(aiohttp_server: AiohttpServer) -> None:
    target = Target()
    server = await aiohttp_server(target.app)
    status, result, err = await run_tool(
        f"127.0.0.1:{server.port}",
        *("--paths", "-", "--max-requests", "50", "--duration", "60", "--progress", "none"),
        stdin=b"/p/hit-a\n/p/gone\n",
    )
    assert status == 0, err
    assert err == ""  # --progress none: nothing on stderr
    assert result["requests"] == 50
    assert result["statuses"] == {"200": 25, "404": 25}
    assert target.arrived == {"hit-a": 26, "gone": 25}  # with the check request
    assert result["seconds"] < 60


async def test_timeouts_are_errors_in_the_table(aiohttp_server: AiohttpServer) -> None:
    target = Target()
    server = await aiohttp_server(target.app)
    try:
        status, result, err = await run_tool(
            f"http://127.0.0.1:{server.port}",
            *("--paths", "-", "--max-requests", "4", "--concurrency", "2"),
            *("--timeout", "0.3", "--progress", "none"),
            stdin=b"/p/hit-a\n/p/slow-b\n",
        )
    finally:
        target.release.set()  # the stuck handlers return, so the server can stop
    assert status == 0, err
    assert result["statuses"] == {"200": 2}
    assert result["errors"] == {"timeout": 2}
    assert target.arrived == {"hit-a": 3, "slow-b": 2}
    rows = {row["status"]: row for row in result["by_status"]}
    assert (rows["timeout"]["count"], rows["timeout"]["share"]) == (2, 0.5)
    assert rows["timeout"]["latency_ms"]["p50"] >= 300
