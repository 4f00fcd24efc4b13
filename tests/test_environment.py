"""environment.yml (conda) carries the same dependencies as pyproject.toml, and the Makefile's torch pin."""

import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]


def pyproject_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + project["optional-dependencies"]["test"]
    return {Requirement(line).name.lower(): Requirement(line) for line in lines}


def environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def environment_requirements() -> dict[str, Requirement]:
    pip = next(d["pip"] for d in environment()["dependencies"] if isinstance(d, dict) and "pip" in d)
    reqs = [Requirement(line) for line in pip if not line.startswith("-")]
    return {r.name.lower(): r for r in reqs}


def floor(req: Requirement) -> Version | None:
    bounds = [Version(s.version) for s in req.specifier if s.operator in (">=", "==", "~=")]
    return max(bounds) if bounds else None


def test_same_package_names():
    assert sorted(environment_requirements()) == sorted(pyproject_requirements())


@pytest.mark.parametrize("name", sorted(pyproject_requirements()))
def test_floors_agree_and_the_environment_satisfies_them(name):
    want, got = pyproject_requirements()[name], environment_requirements()[name]
    if name == "torch":  # pinned in the environment, a floor in the package
        assert want.specifier.contains(str(floor(got))), f"environment.yml {got} violates pyproject.toml {want}"
    else:
        assert floor(got) == floor(want), f"{name}: environment.yml {got}, pyproject.toml {want}"


def test_torch_pin_matches_the_makefile():
    pin = re.search(r"^TORCH\s*:=\s*torch==(\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert str(environment_requirements()["torch"].specifier) == f"=={pin}"


def test_python_version_meets_requires_python():
    python = next(d for d in environment()["dependencies"] if isinstance(d, str) and d.startswith("python="))
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(requires).contains(python.split("=", 1)[1])


def test_the_environment_installs_the_package_itself():
    pip = next(d["pip"] for d in environment()["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "-e ." in pip
