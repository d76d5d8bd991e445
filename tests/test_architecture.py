"""The one direction of dependencies (README, "Architecture"): lessons -> widgets -> xai_ref; inside xai_ref the
course and training tools sit on top of the methods, never the other way; the NumPy twins never import torch;
no module is over 500 lines."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOOLS = ("xai_ref.course", "xai_ref.training")


def _module(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path) -> set[str]:
    """Every module a file imports (relative imports resolved)."""
    package = _module(path).split(".") if path.name == "__init__.py" else _module(path).split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}
    return found


def _files(folder: str):
    return sorted((ROOT / folder).rglob("*.py"))


def _is(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize("path", _files("xai_ref"), ids=lambda p: str(p.relative_to(ROOT)))
def test_xai_ref_never_imports_widgets_and_the_core_never_imports_the_tools(path):
    name, imports = _module(path), _imports(path)
    assert not any(_is(i, "widgets") for i in imports), name
    if not any(_is(name, t) for t in TOOLS):
        assert not any(_is(i, t) for i in imports for t in TOOLS), (name, sorted(imports))


@pytest.mark.parametrize("path", _files("xai_ref/scratch"), ids=lambda p: p.name)
def test_the_numpy_twins_import_no_torch_at_module_level(path):
    top = [n for n in ast.parse(path.read_text()).body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name for n in top if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module or "" for n in top if isinstance(n, ast.ImportFrom)}
    assert not any(_is(n, "torch") for n in names), path.name
    relative = [n for n in top if isinstance(n, ast.ImportFrom) and n.level == 2]
    allowed = {"checks", "trace", "compose", "units", "equations", "data", "data.concepts"}
    assert all(n.module in allowed for n in relative), [n.module for n in relative]


@pytest.mark.parametrize("folder", ["xai_ref", "widgets"])
def test_no_module_over_500_lines(folder):
    long = {str(p.relative_to(ROOT)): n for p in _files(folder) if (n := len(p.read_text().splitlines())) > 500}
    assert not long, long


def test_lessons_find_the_results_through_the_package():
    from xai_ref import results

    assert results.path("RESULTS.md").read_text().startswith("# Benchmark results")
    assert "runs" in results.load("conditions.json")
    with pytest.raises(FileNotFoundError, match="install it editable"):
        results.path("missing.json")
    with pytest.raises(ValueError, match="a file name in the benchmarks folder"):
        results.path("../README.md")
    for lesson in (ROOT / "lessons").glob("*.ipynb"):
        assert "../benchmarks" not in lesson.read_text(), lesson.name
