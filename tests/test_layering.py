"""Which way the imports run (DEVGUIDE): scrapers never reach up into the job system."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_scrapers_do_not_import_the_job_classes() -> None:
    offenders = {
        path.name: sorted(name for name in imported_modules(path)
                          if name.split(".")[0] in ("job_queue", "jobs", "app", "views"))
        for path in (ROOT / "scrapers").glob("*.py")
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_views_take_the_rate_vocabulary_from_models() -> None:
    for path in (ROOT / "views").glob("*.py"):
        modules = imported_modules(path)
        assert "scrapers.store" not in modules and "scrapers.rates" not in modules, path.name


def test_webhooks_sit_between_the_models_and_the_views() -> None:
    """Webhooks listen to the job system, which never imports them; they import no view and not app."""
    for path in [*(ROOT / "jobs").glob("*.py"), ROOT / "job_queue.py"]:
        assert not any(name.split(".")[0] == "webhooks" for name in imported_modules(path)), path.name
    for path in (ROOT / "webhooks").glob("*.py"):
        found = sorted(name for name in imported_modules(path) if name.split(".")[0] in ("views", "app"))
        assert found == [], path.name


def _job_module_imports(path: Path) -> set[str]:
    """The modules of ``jobs/`` that ``path`` imports anywhere: at the top, in functions, under TYPE_CHECKING."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module == "jobs":
            found.update(f"jobs.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return {name.split(".")[1] for name in found if name.startswith("jobs.")}


def test_the_job_package_has_no_import_circle() -> None:
    graph = {path.stem: _job_module_imports(path) for path in (ROOT / "jobs").glob("*.py")}
    circles = []

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            circles.append(" -> ".join(trail[trail.index(module):] + [module]))
            return
        for imported in sorted(graph.get(module, ())):
            visit(imported, trail + [module])

    for module in sorted(graph):
        visit(module, [])
    assert circles == []
