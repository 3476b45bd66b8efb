"""Every third-party import is declared in pyproject.toml, where its users need it.

The package and examples/ may import only [project].dependencies; tests/ also the `test` extra; bench/
also the `bench` extra. An import is mapped to the distribution that provides it here (orjson -> orjson,
bencodepy -> bencode.py). CI runs this in a fresh virtual environment, where an undeclared package is
also simply missing; this test names the file that imports it, even one that no test runs.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(requirements: list[str]) -> set[str]:
    return {canonical(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", r.strip()).group()) for r in requirements}


def sources(folder: str) -> list[Path]:
    return [p for p in (ROOT / folder).rglob("*.py") if "node_modules" not in p.parts]


def third_party_imports(folder: str) -> dict[str, Path]:
    """Top-level module name -> one file of `folder` importing it, minus stdlib and our own modules."""
    local = {"i2ptorrent"} | {p.stem for d in ("tests", "bench", "examples") for p in sources(d)}
    found: dict[str, Path] = {}
    for path in sources(folder):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local:
                    found.setdefault(top, path)
    return found


def test_every_third_party_import_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    runtime = requirement_names(project["dependencies"])
    allowed = {"i2ptorrent": runtime, "examples": runtime,
               "tests": runtime | requirement_names(extras.get("test", [])),
               "bench": runtime | requirement_names(extras.get("test", [])) | requirement_names(extras.get("bench", []))}
    providers = importlib.metadata.packages_distributions()
    missing = []
    for folder, declared in allowed.items():
        for module, path in sorted(third_party_imports(folder).items()):
            # Not installed here (an optional bench package): its distribution must carry its name.
            dists = {canonical(d) for d in providers.get(module, [module])}
            if not dists & declared:
                missing.append(f"{path.relative_to(ROOT)} imports {module} ({', '.join(sorted(dists))})")
    assert not missing, "undeclared in pyproject.toml:\n" + "\n".join(missing)
    assert {"orjson", "libtorrent", "aiortc"} <= third_party_imports("i2ptorrent").keys()  # the scan sees imports
