"""The package layout's one hard rule: only service/render/ drives libvips.

Everything else in the service talks to libvips through render's plain-data
API (service/__init__.py, pyproject's TID251 ban). These check the rule on
the code as it is, and that ruff would stop a stray import before review.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
SERVICE = ROOT / "service"
RENDER = SERVICE / "render"
RUFF = Path(sys.executable).parent / "ruff"


def imports_pyvips(source: str) -> bool:
    """Whether the module imports pyvips anywhere (top level or in a function)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            if any(alias.name.split(".")[0] == "pyvips" for alias in node.names):
                return True
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").split(".")[0] == "pyvips"
        ):
            return True
    return False


def test_the_import_check_sees_every_form() -> None:
    assert imports_pyvips("import pyvips\n")
    assert imports_pyvips("import os, pyvips.enums\n")
    assert imports_pyvips("from pyvips import Image\n")
    assert imports_pyvips("def f() -> None:\n    import pyvips\n")
    assert not imports_pyvips("from .render import pyvips_version\nimport pyvipsish\n")


def test_only_service_render_imports_pyvips() -> None:
    modules = sorted(SERVICE.rglob("*.py"))
    assert RENDER / "header.py" in modules  # the walk sees the package
    offenders = [
        str(path.relative_to(ROOT))
        for path in modules
        if not path.is_relative_to(RENDER) and imports_pyvips(path.read_text())
    ]
    assert offenders == []
    assert any(imports_pyvips(path.read_text()) for path in RENDER.glob("*.py"))


def ruff_on(source: str, filename: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RUFF), "check", "--no-cache", "--stdin-filename", filename, "-"],
        input=source,
        cwd=ROOT,  # pyproject.toml's settings: the ban and where it is lifted
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_ruff_refuses_a_stray_pyvips_import() -> None:
    stray = ruff_on("import pyvips\n", "service/stray.py")
    assert stray.returncode != 0
    assert "TID251" in stray.stdout
    assert "only service/render/ imports pyvips" in stray.stdout
    # Where it belongs, the ban is lifted (the unused import is still an F401).
    inside = ruff_on("import pyvips\n", "service/render/stray.py")
    assert "F401" in inside.stdout
    assert "TID251" not in inside.stdout


def test_the_readme_stays_a_manual_of_250_lines() -> None:
    """The README is the manual's first page: its detail belongs in docs/."""
    readme = ROOT / "README.md"
    assert len(readme.read_text().splitlines()) <= 250
