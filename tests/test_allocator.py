"""The service re-executes itself once with glibc's malloc tuned for renders."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from service.process.allocator import TUNABLES, is_glibc, tuned_environment

from .serving import running_service


def environment_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as handle:
        entries = handle.read().split(b"\0")
    pairs = (entry.decode().partition("=") for entry in entries if entry)
    return {name: value for name, _, value in pairs}


def test_plain_glibc_gets_the_tunables() -> None:
    tuned = tuned_environment({"PATH": "/usr/bin"}, glibc=True)
    assert tuned == {"PATH": "/usr/bin", "GLIBC_TUNABLES": TUNABLES}


@pytest.mark.parametrize(
    "environ",
    [
        {"GLIBC_TUNABLES": "glibc.malloc.arena_max=4"},
        {"MALLOC_ARENA_MAX": "2"},
        {"MALLOC_MMAP_THRESHOLD_": "65536"},
        {"LD_PRELOAD": "/usr/local/lib/libjemalloc.so.2"},
    ],
)
def test_an_operators_allocator_settings_win(environ: dict[str, str]) -> None:
    assert tuned_environment(environ, glibc=True) is None


def test_other_c_libraries_are_left_alone() -> None:
    assert tuned_environment({}, glibc=False) is None


def test_this_machine_is_glibc() -> None:
    assert is_glibc()  # the tests below rely on it


def test_the_serving_worker_runs_tuned_and_the_command_keeps_its_pid(tmp_path: Path) -> None:
    """The command re-executes itself tuned under its own pid (then as the
    supervisor), and the worker that answers inherits the setting."""
    with running_service("--cache-dir", str(tmp_path / "cache")) as running:
        with urllib.request.urlopen(f"{running.base}/healthz", timeout=10) as response:
            worker = json.load(response)["pid"]
        assert running.workers() == {worker}
        for pid in (running.process.pid, worker):
            # glibc cuts the string at its first ':' in place while parsing it.
            seen = environment_of(pid)["GLIBC_TUNABLES"]
            assert seen
            assert TUNABLES.startswith(seen)


def test_the_operators_setting_is_kept(tmp_path: Path) -> None:
    with running_service(
        "--cache-dir", str(tmp_path / "cache"), env={"MALLOC_ARENA_MAX": "2"}
    ) as running:
        (worker,) = running.workers()
        environment = environment_of(worker)
        assert "GLIBC_TUNABLES" not in environment
        assert environment["MALLOC_ARENA_MAX"] == "2"
