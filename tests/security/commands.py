"""The slash commands the app declares: manifest.yml's, and at least README.md's five."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SLASH_COMMANDS = ("/onboard", "/offboard", "/accounts", "/groups", "/roleup")


def declared_commands() -> list[str]:
    manifest = ROOT / "manifest.yml"
    if not manifest.exists():
        return list(SLASH_COMMANDS)
    import yaml

    data = yaml.safe_load(manifest.read_text())
    commands = data.get("features", {}).get("slash_commands", [])
    return sorted({c["command"] for c in commands} | set(SLASH_COMMANDS))
