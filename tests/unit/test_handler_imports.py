"""handlers/ is one package per feature: no feature imports another (what several share lives
in bot/slack), and bot/ never imports handlers/ except where create_app registers them."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.source import nodes

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = ROOT / "handlers"


def features(handlers: Path = HANDLERS) -> set[str]:
    return {p.name for p in handlers.iterdir() if (p / "__init__.py").is_file()}


def imported(path: Path, root: Path = ROOT) -> list[str]:
    """Every module `path` imports (absolute names; relative ones resolved against it)."""
    package = ".".join(path.relative_to(root).parts[:-1])
    names: list[str] = []
    for node in nodes(path):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            names.append(base)
            # `from handlers import onboard` names a feature too.
            names += [f"{base}.{alias.name}" for alias in node.names]
    return names


def feature_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "handlers" else None


def sideways_imports(root: Path = ROOT) -> list[str]:
    handlers = root / "handlers"
    known = features(handlers)
    found = []
    for path in sorted(handlers.rglob("*.py")):
        rel = path.relative_to(handlers)
        if len(rel.parts) < 2:
            continue  # handlers/__init__.py registers every feature: that is its job
        own = rel.parts[0]
        for module in imported(path, root):
            other = feature_of(module)
            if other in known and other != own:
                found.append(f"handlers/{rel} imports {module}")
    return sorted(set(found))


def test_every_feature_is_a_package_with_register():
    assert features() >= {
        "onboard",
        "offboard",
        "groups",
        "accounts",
        "invite",
        "approvals",
        "grants",
        "reviews",
        "admin",
        "home",
    }
    for name in features():
        tree = ast.parse((HANDLERS / name / "__init__.py").read_text())
        functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert "register" in functions, f"handlers/{name} has no register(app, core)"


def test_handlers_hold_only_feature_packages():
    loose = [p.name for p in HANDLERS.glob("*.py") if p.name != "__init__.py"]
    assert loose == [], "a shared piece belongs in bot/slack, a feature's in its package"


def test_no_feature_imports_another():
    assert sideways_imports() == []


def test_the_check_sees_a_sideways_import(tmp_path):
    """The check itself can fail: a groups module importing onboard's views is reported."""
    fake = tmp_path / "handlers"
    for name in ("groups", "onboard"):
        (fake / name).mkdir(parents=True)
        (fake / name / "__init__.py").write_text("def register(app, core): ...\n")
    (fake / "groups" / "command.py").write_text(
        "from handlers.onboard.views import OnboardView\nfrom handlers import onboard\n"
    )
    (fake / "onboard" / "views.py").write_text("from . import command\nfrom .. import groups\n")
    assert sideways_imports(tmp_path) == [
        "handlers/groups/command.py imports handlers.onboard",
        "handlers/groups/command.py imports handlers.onboard.views",
        "handlers/groups/command.py imports handlers.onboard.views.OnboardView",
        "handlers/onboard/views.py imports handlers.groups",
    ]


def test_bot_imports_handlers_only_to_register_them():
    importers = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "bot").rglob("*.py")
        if any(m == "handlers" or m.startswith("handlers.") for m in imported(path))
    )
    assert importers == ["bot/app.py"]
