"""The README stays true to the code: every variable and every command is documented."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.cli_commands import COMMANDS

ROOT = Path(__file__).resolve().parents[2]


def section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def variables_read_by_the_code() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "bot/settings.py", ROOT / "bot/cli.py"):
        source = path.read_text()
        names |= set(re.findall(r"env(?:iron)?\.get\(\s*\"([A-Z][A-Z0-9_]+)\"", source))
        names |= set(re.findall(r"_(?:int|float|url)\(env, \"([A-Z][A-Z0-9_]+)\"", source))
    return names


def test_the_quick_start_comes_first():
    text = (ROOT / "README.md").read_text()
    headings = re.findall(r"^## (.+)$", text, re.MULTILINE)
    assert headings[0] == "Quick start"
    for title in ("Configuration", "Creating the Slack app from manifest.yml", "CLI reference"):
        assert title in headings
    assert headings.index("Deployment") > headings.index("Configuration")


def test_every_environment_variable_is_in_the_configuration_table():
    table = section("Configuration")
    found = variables_read_by_the_code()
    assert {"DATABASE_URL", "ROLEUP_ENCRYPTION_KEYS", "WEB_CONCURRENCY", "PORT"} <= found
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)`", table, re.MULTILINE))
    assert found - documented == set()


def test_every_command_is_in_the_cli_reference():
    reference = section("CLI reference")
    for command in COMMANDS:
        if command:
            assert f"`roleup {' '.join(command)}" in reference, command


def test_the_procfile_is_the_one_the_readme_shows():
    procfile = (ROOT / "Procfile").read_text().strip()
    assert (
        procfile == "web: roleup serve --no-jobs\nworker: roleup worker\nrelease: roleup db upgrade"
    )
    assert procfile in section("Deployment")


def test_every_slash_command_and_roleup_subcommand_is_in_the_slack_commands_section():
    import yaml

    from bot.slack.args import USAGE

    commands = section("Slack commands")
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    declared = [c["command"] for c in manifest["features"]["slash_commands"]]
    assert len(declared) == 5
    for command in declared:
        assert f"| `{command}" in commands, command
    subcommands = set(re.findall(r"(?:`/roleup |\| )([a-z]+)", USAGE["/roleup"]))
    assert {"help", "integration", "breakglass", "review"} <= subcommands
    for subcommand in subcommands:
        assert f"`/roleup {subcommand}" in commands, subcommand


def test_the_tests_section_names_every_test_folder_and_the_fast_run():
    tests = section("Tests")
    with_tests = {p.parent.name for p in (ROOT / "tests").glob("*/test_*.py")}
    assert with_tests == {"unit", "services", "e2e", "security"}
    for folder in with_tests:
        assert f"| `tests/{folder}` |" in tests, folder
    assert "scripts/test.sh --fast" in tests
    assert '"--fast"' in (ROOT / "scripts/test.sh").read_text()
    assert not list((ROOT / "tests").glob("test_*.py")), "a test file outside the four folders"
