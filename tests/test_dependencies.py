"""The dependency floors keep out every release with a published advisory, and the README says why each floor is where it is."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent

# Package -> (the last release an advisory affects, the advisory). The floor must exclude that release.
ADVISORIES = {
    "flask": ("3.1.2", "GHSA-68rp-wp8r-4726"),
    "werkzeug": ("3.1.5", "GHSA-29vq-49wr-vm6x"),
    "jinja2": ("3.1.5", "CVE-2025-27516"),
    "requests": ("2.32.5", "CVE-2026-25645"),
    "urllib3": ("2.6.2", "CVE-2026-21441"),
    "cryptography": ("46.0.6", "CVE-2026-39892"),
}


def _requirements(name: str) -> dict[str, Requirement]:
    lines = (REPO / name).read_text().splitlines()
    parsed = [Requirement(line) for line in (line.split("#")[0].strip() for line in lines) if line and
              not line.startswith("-r")]
    return {requirement.name.lower(): requirement for requirement in parsed}


RUNTIME = _requirements("requirements.txt")


@pytest.mark.parametrize("package", sorted(ADVISORIES))
def test_no_release_with_a_known_advisory_is_admitted(package: str) -> None:
    affected, advisory = ADVISORIES[package]
    requirement = RUNTIME[package]
    assert not requirement.specifier.contains(affected), f"{requirement} admits {package} {affected} ({advisory})"
    assert Version(version(package)) > Version(affected), f"installed {package} is affected by {advisory}"


def test_every_installed_dependency_meets_its_floor() -> None:
    wrong = {name: version(name) for name, requirement in {**RUNTIME, **_requirements("requirements-dev.txt")}.items()
             if not requirement.specifier.contains(version(name), prereleases=True)}
    assert wrong == {}, "installed versions outside requirements*.txt: pip install -r requirements-dev.txt"


def test_the_readme_says_where_each_runtime_floor_comes_from() -> None:
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("| package | floor | where the floor comes from |"):]
    rows = {match[0].lower(): match[1] for match in re.findall(r"^\| ([\w\[\]-]+) \| ≥ ([\w.]+) \|", table, re.M)}
    floors = {name: next(spec.version for spec in requirement.specifier if spec.operator == ">=")
              for name, requirement in RUNTIME.items()}
    assert rows == floors
