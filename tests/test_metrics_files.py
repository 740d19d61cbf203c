"""The workers' metric files go to memory (/dev/shm) when it can take them,
else to the temporary directory (service/process/metrics_files.py)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from service.process.metrics_files import new_metrics_directory


def test_a_writable_memory_directory_with_room_holds_them(tmp_path: Path) -> None:
    made = Path(new_metrics_directory(str(tmp_path)))
    assert made.parent == tmp_path
    assert made.is_dir()
    assert list(made.iterdir()) == []
    assert made.stat().st_mode & 0o777 == 0o700  # no other user reads or plants files


def test_each_start_gets_a_new_directory(tmp_path: Path) -> None:
    assert new_metrics_directory(str(tmp_path)) != new_metrics_directory(str(tmp_path))


def test_without_the_memory_directory_they_go_to_the_temporary_one(tmp_path: Path) -> None:
    made = Path(new_metrics_directory(str(tmp_path / "absent")))
    try:
        assert made.parent == Path(tempfile.gettempdir())
        assert made.is_dir()
    finally:
        os.rmdir(made)
