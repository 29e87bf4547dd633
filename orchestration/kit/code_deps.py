"""The project files a module runs: its imports, followed transitively, read from the source.

An asset's code version and its `dvc.yaml` deps come from here (orchestration/kit/stages.py), so
an edit to any file an asset really runs re-runs it, and no list of files is kept by hand.

Counted as an import of a project module: ``import a.b``, ``from a import b`` and ``from .b import
c`` at any depth (inside functions too, since lazy imports still run), and a project module's
dotted name passed as a string to ``LazyFunction`` or ``import_module`` (registries that import
by name, such as ``LazyFunction("lenslab.synthetic.oxford_pets", "generate")``). Importing
``a.b.c`` also runs ``a/__init__.py`` and ``a/b/__init__.py``, so those count too.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

from lenslab.params import REPO_ROOT

PROJECT_PACKAGES = ("lenslab", "models", "assets", "orchestration")
IMPORTING_CALLS = {"LazyFunction", "import_module"}


@cache
def project_modules(root: Path = REPO_ROOT) -> dict[str, Path]:
    """Every module of the project packages under ``root``: dotted name -> file."""
    modules: dict[str, Path] = {}
    for package in PROJECT_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


def _with_parents(name: str, modules: dict[str, Path]) -> list[str]:
    parts = name.split(".")
    return [m for m in (".".join(parts[:i]) for i in range(1, len(parts) + 1)) if m in modules]


@cache
def direct_imports(module: str, root: Path = REPO_ROOT) -> frozenset[str]:
    """The project modules ``module`` imports (anywhere in its body), with their packages."""
    modules = project_modules(root)
    path = modules[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.update(_with_parents(alias.name, modules))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.update(_with_parents(base, modules))
            for alias in node.names:  # `from pkg import module`
                found.update(_with_parents(f"{base}.{alias.name}", modules))
        elif isinstance(node, ast.Call) and _called_name(node) in IMPORTING_CALLS:
            for arg in node.args[:1]:
                if isinstance(arg, ast.Constant) and arg.value in modules:
                    found.update(_with_parents(arg.value, modules))
    found.discard(module)
    return frozenset(found)


def code_files(module: str, root: Path = REPO_ROOT) -> tuple[str, ...]:
    """Repository paths of ``module`` and of every project module it runs, sorted."""
    modules = project_modules(root)
    seen: set[str] = set()
    todo = _with_parents(module, modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(direct_imports(name, root) - seen)
    return tuple(sorted(modules[m].relative_to(root).as_posix() for m in seen))
