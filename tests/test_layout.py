"""The code keeps the shape the style guide asks for: small modules, small classes, imports downward."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES, MAX_CLASS_LINES = 300, 200


def _python_files(folder: str) -> list[Path]:
    return sorted((REPO / folder).glob("*.py"))


def test_job_modules_and_classes_stay_small() -> None:
    too_long = []
    for path in _python_files("jobs"):
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{path.name}: {lines} lines")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                too_long.append(f"{path.name}: class {node.name} {node.end_lineno - node.lineno + 1} lines")
    assert too_long == []


def test_job_queue_module_is_only_the_public_face() -> None:
    assert len((REPO / "job_queue.py").read_text().splitlines()) < 40


def test_the_job_package_imports_no_scraper_view_or_app() -> None:
    for path in _python_files("jobs") + [REPO / "job_queue.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module]
                for name in names:
                    assert not (name or "").split(".")[0] in ("scrapers", "views", "app", "models"), \
                        f"{path.name} imports {name}"
