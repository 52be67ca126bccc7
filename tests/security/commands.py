"""The slash commands the app declares, read from manifest.yml (PRODUCT.md's list until then)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_COMMANDS = ("/onboard", "/offboard", "/accounts", "/groups", "/roleup")


def declared_commands() -> list[str]:
    manifest = ROOT / "manifest.yml"
    if not manifest.exists():
        return list(PRODUCT_COMMANDS)
    import yaml

    data = yaml.safe_load(manifest.read_text())
    commands = data.get("features", {}).get("slash_commands", [])
    return sorted({c["command"] for c in commands} | set(PRODUCT_COMMANDS))
