"""The layers hold: each package imports only the packages below it (docs/architecture.md).

Read from the source (every ``import`` and ``from ... import`` of every module, including the
ones inside functions), so a lazy import cannot hide a layer break; and once more at run time
for ``core``: importing every pure module in a fresh interpreter loads no web framework, no
database library and nothing of ours outside ``core``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "consent_service"

# What each layer may import of ours (besides itself). Anything not listed is refused.
ALLOWED: dict[str, set[str]] = {
    "core": {"errors"},
    "storage": {"core", "errors"},
    "schemas": {"core", "errors"},
    "auth": {"core", "errors", "storage"},
    "services": {"core", "errors", "storage", "schemas", "container"},
    "container": {"core", "errors", "storage", "services"},
    "views": {
        "core",
        "errors",
        "storage",
        "schemas",
        "services",
        "container",
        "auth",
        "extensions",
        "config",
        "log_hygiene",
    },
    # The pages reach the container through ``container.current``, not through the API's views;
    # they share only the printable pages' renderer (views/html.py) with them.
    "web": {"core", "errors", "schemas", "services", "container", "config", "views.html"},
}
# Libraries a pure module must not reach for.
NOT_IN_CORE = (
    "flask",
    "flask_smorest",
    "flask_wtf",
    "flask_babel",
    "werkzeug",
    "sqlalchemy",
    "sqlmodel",
    "alembic",
    "psycopg",
    "marshmallow",
    "webargs",
    "authlib",
)


def _layer_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _imports(path: Path) -> set[str]:
    """Every module this file names in an import statement, absolute, ours and others'."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; the layers are read from absolute ones"
            module = node.module or ""
            folder = PACKAGE.parent.joinpath(*module.split("."))
            # ``from consent_service.views import html`` names the module views.html, not views.
            found.update(f"{module}.{alias.name}" for alias in node.names) if folder.is_dir() else found.add(
                module
            )
    return found


def _modules(layer: str) -> list[Path]:
    folder = PACKAGE / layer
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [PACKAGE / f"{layer}.py"]


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_only_what_is_below_it(layer: str) -> None:
    broken = []
    for path in _modules(layer):
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] != "consent_service" or len(parts) < 2:
                continue
            if (
                parts[1] != layer
                and parts[1] not in ALLOWED[layer]
                and ".".join(parts[1:3]) not in ALLOWED[layer]
            ):
                broken.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not broken, "\n".join(broken)


def test_core_names_no_web_or_database_library() -> None:
    broken = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in _modules("core")
        for name in _imports(path)
        if name.split(".")[0] in NOT_IN_CORE
    ]
    assert not broken, "\n".join(broken)


def test_casbin_is_imported_by_the_policy_module_only() -> None:
    users = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if any(name.split(".")[0] == "casbin" for name in _imports(path))
    }
    assert users == {"core/policy.py"}


def test_importing_the_core_loads_no_framework_and_nothing_above_it() -> None:
    """Run in a fresh interpreter, so nothing this test process imported earlier can hide a load."""
    modules = [f"consent_service.core.{path.stem}" for path in _modules("core") if path.stem != "__init__"]
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "loaded = sorted(name for name in sys.modules\n"
        f"                if name.split('.')[0] in {NOT_IN_CORE!r}\n"
        "                or (name.startswith('consent_service.') and name.split('.')[1]\n"
        "                    not in ('core', 'errors', 'config', 'log_hygiene')))\n"
        "print('\\n'.join(loaded))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"importing core loaded:\n{result.stdout}"


def test_the_layer_check_sees_a_break(tmp_path: Path) -> None:
    """The source reader finds an import inside a function body, where a lazy import would hide."""
    sample = tmp_path / "sample.py"
    sample.write_text("def lazy():\n    from consent_service.views import common\n", encoding="utf-8")
    assert "consent_service.views.common" in _imports(sample)


def test_no_page_or_view_acts_as_the_operator() -> None:
    """A request's caller is its token's or its signed-in person's, re-checked by the use case.

    ``caller=None`` (or ``Via.OPERATOR``) skips that re-check; it is for the command line only.
    """
    broken = []
    for layer in ("views", "web"):
        for path in _modules(layer):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.keyword)
                    and node.arg == "caller"
                    and isinstance(node.value, ast.Constant)
                    and node.value.value is None
                ):
                    broken.append(f"{path.relative_to(PACKAGE)}:{node.value.lineno} caller=None")
                if isinstance(node, ast.Attribute) and node.attr == "OPERATOR":
                    broken.append(f"{path.relative_to(PACKAGE)}:{node.lineno} Via.OPERATOR")
    assert not broken, "\n".join(broken)
