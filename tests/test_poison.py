"""The query of death (issue 22, part 4): an original in flight when a
worker crashes becomes a suspect, rendered alone next time; in flight at
two crashes within --poison-ttl, it is refused at once with a 422, while
every other request is answered throughout. A test-only variable crashes
the render of one chosen original with a real SIGSEGV."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from service.process.crashes import CrashLog, original_digest
from service.solo import SoloLock

from .conftest import SAMPLES
from .serving import ROOT, running_service
from .waiting import eventually


def get(url: str, request_id: str | None = None) -> tuple[int, bytes]:
    headers = {} if request_id is None else {"X-Request-Id": request_id}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=60
        ) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def crash(url: str, request_id: str) -> None:
    """The request whose render crashes its worker: the connection drops."""
    asked = urllib.request.Request(url, headers={"X-Request-Id": request_id})
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError)):
        urllib.request.urlopen(asked, timeout=60)


def poison(*arguments: str) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "service", "poison", *arguments],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return run.stdout


def test_an_original_that_crashes_twice_is_refused_and_the_service_answers_throughout(
    tmp_path: Path,
) -> None:
    originals = tmp_path / "originals"
    originals.mkdir()
    shutil.copy(SAMPLES / "retina.jpg", originals / "fine.jpg")
    shutil.copy(SAMPLES / "retina.jpg", originals / "deadly.jpg")
    cache = tmp_path / "cache"
    # One worker, the default: the supervisor's socket holds each request
    # that arrives while the crashed worker is replaced.
    arguments = ("--originals", str(originals), "--cache-dir", str(cache))
    log = tmp_path / "service.log"
    with (
        log.open("wb") as output,
        running_service(
            *arguments, env={"IMAGE_FACTORY_TEST_CRASH_ON": "deadly.jpg"}, stderr=output.fileno()
        ) as running,
    ):
        base = running.base
        started = running.workers()
        crash(f"{base}/picture/deadly.jpg?w=100", "first-crash")
        assert get(f"{base}/picture/fine.jpg?w=100")[0] == 200  # the replacement answers
        listed = eventually(lambda: poison("list", "--cache-dir", str(cache)), 30)
        assert listed == "deadly.jpg\t1 crash(es)\trenders alone\n"

        crash(f"{base}/picture/deadly.jpg?w=101", "second-crash")  # a suspect: alone, crashes
        assert get(f"{base}/picture/fine.jpg?w=101")[0] == 200
        eventually(lambda: "2 crash(es)\trefused" in poison("list", "--cache-dir", str(cache)), 30)
        eventually(lambda: len(running.workers()) == 1, 30)
        serving = running.workers()
        assert not serving & started  # each crash cost the worker: replaced

        status, body = get(f"{base}/picture/deadly.jpg?w=102", "refused-one")
        assert status == 422
        assert "crashed the renderer twice" in json.loads(body)["error"]
        assert running.workers() == serving  # refused without being rendered: no crash
        with urllib.request.urlopen(f"{base}/metrics", timeout=30) as response:
            metrics = response.read().decode()
        assert 'image_factory_rejected_total{reason="poisoned"} 1.0' in metrics

        assert poison("clear", "deadly.jpg", "--cache-dir", str(cache)) == "cleared 1\n"
        assert poison("list", "--cache-dir", str(cache)) == ""
        assert get(f"{base}/picture/fine.jpg?w=103")[0] == 200
    said = log.read_text()
    assert "crashed (signal SIGSEGV) rendering deadly.jpg (request first-crash)" in said
    assert "crashed (signal SIGSEGV) rendering deadly.jpg (request second-crash)" in said
    assert "refused deadly.jpg: it crashed the renderer twice (request refused-one)" in said


def test_a_clean_exit_blames_nothing_and_old_crashes_expire(tmp_path: Path) -> None:
    """Each worker's records (a crash log of its own, in this process) read
    as the supervisor reads a crashed worker's."""
    supervisor = CrashLog(str(tmp_path), ttl_seconds=60)
    pid = os.getpid()
    digest = original_digest("a.jpg\0" + "1\0" * 3)
    now = time.time()
    inflight = tmp_path / "crashes" / "inflight"
    with CrashLog(str(tmp_path), ttl_seconds=60).rendering(digest, "a.jpg", "r-1"):
        (record,) = inflight.iterdir()
        assert record.name.startswith(f"{pid}-")
        assert supervisor.record_crash(12345) == []  # nothing was in flight in that process
        # A crash now, past the TTL by the time of the next: it expires.
        assert supervisor.record_crash(pid, now=now - 120) == [("a.jpg", "r-1")]
        assert not any(inflight.iterdir())  # moved into the suspects
    assert supervisor.crashes(digest, now=now) == 0  # past the TTL
    with CrashLog(str(tmp_path), ttl_seconds=60).rendering(digest, "a.jpg", "r-2"):
        assert supervisor.record_crash(pid, now=now) == [("a.jpg", "r-2")]
    assert supervisor.crashes(digest, now=now) == 1  # the expired one was dropped
    worker = CrashLog(str(tmp_path), ttl_seconds=60)
    with worker.rendering(digest, "a.jpg", "r-3"):
        pass
    assert supervisor.record_crash(pid, now=now) == []  # nothing in flight any more
    with worker.rendering(digest, "a.jpg", "r-4"):
        supervisor.forget_worker(pid)  # a clean exit
        assert not any(inflight.iterdir())
    assert supervisor.crashes(digest, now=now) == 1


def test_one_original_in_two_renders_stays_recorded_until_both_end(tmp_path: Path) -> None:
    """Two variants of one original render at once: when the first ends,
    the second is still in flight, and a crash then blames it."""
    log = CrashLog(str(tmp_path), ttl_seconds=60)
    digest = original_digest("b.jpg\0" + "1\0" * 3)
    with log.rendering(digest, "b.jpg", "first"), log.rendering(digest, "b.jpg", "second"):
        pass
    with log.rendering(digest, "b.jpg", "first"):
        with log.rendering(digest, "b.jpg", "second"):
            pass
        assert log.record_crash(os.getpid()) == [("b.jpg", "first")]


def test_a_render_whose_record_failed_is_still_cleared_when_it_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its own write failed, a later render's listed it: its end rewrites
    the record, so a crash after it does not blame it."""
    log = CrashLog(str(tmp_path), ttl_seconds=60)
    real_pwrite = os.pwrite
    failures = iter([True])

    def flaky(descriptor: int, data: bytes, offset: int) -> int:
        if next(failures, False):
            raise OSError(28, "No space left on device")
        return real_pwrite(descriptor, data, offset)

    monkeypatch.setattr(os, "pwrite", flaky)
    with log.rendering("d1", "first.jpg", "r-1"):  # its write fails
        with log.rendering("d2", "second.jpg", "r-2"):
            pass
        with log.rendering("d3", "third.jpg", "r-3"):
            pass
    assert log.record_crash(os.getpid()) == []


def test_a_torn_record_blames_nothing_and_a_longer_old_one_is_cut(tmp_path: Path) -> None:
    """Each write is a length line and the JSON: what follows is an older,
    longer record's tail, and a file that does not parse is advice lost."""
    log = CrashLog(str(tmp_path), ttl_seconds=60)
    with log.rendering("d1", "a-long-name-of-an-original.jpg", "r-1"):
        pass  # the record was longer than the next one
    with log.rendering("d2", "b.jpg", "r-2"):
        (record,) = (tmp_path / "crashes" / "inflight").iterdir()
        body = json.dumps([["d2", "b.jpg", "r-2"]]).encode()
        written = record.read_bytes()
        assert written.startswith(b"%d\n%s" % (len(body), body))
        assert len(written) > len(body) + 3  # the older record's tail is still there
        assert log.record_crash(os.getpid()) == [("b.jpg", "r-2")]
    inflight = tmp_path / "crashes" / "inflight"
    (inflight / "777-0").write_bytes(b'40\n[["d3", "c.jp')
    (inflight / "777-1").write_bytes(b"not a record")
    assert log.record_crash(777) == []
    assert not any(name.name.startswith("777-") for name in inflight.iterdir())
    log.close()
    assert not any(inflight.iterdir())


def test_a_suspect_renders_alone() -> None:
    lock = SoloLock()
    order: list[str] = []
    running = threading.Event()
    release = threading.Event()

    def ordinary() -> None:
        with lock.shared():
            order.append("ordinary starts")
            running.set()
            release.wait(30)
            order.append("ordinary ends")

    def suspect() -> None:
        with lock.alone():
            order.append("suspect runs")

    first = threading.Thread(target=ordinary)
    first.start()
    assert running.wait(30)
    second = threading.Thread(target=suspect)
    second.start()
    eventually(lambda: lock._waiting_alone == 1, 30)
    release.set()
    first.join(30)
    second.join(30)
    assert order == ["ordinary starts", "ordinary ends", "suspect runs"]
