"""manifest.yml creates the Slack app README.md describes, with the least scopes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
# README.md, "Slack commands".
SLASH_COMMANDS = ("/onboard", "/offboard", "/accounts", "/groups", "/roleup")
# Each scope and the feature that needs it; anything more is a scope too many.
LEAST_BOT_SCOPES = {
    "commands": "the slash commands",
    "chat:write": "approval messages, results and ephemeral replies",
    "im:write": "DMs to approvers, requesters and invitees",
    "users:read": "people's names and whether they are still active",
    "usergroups:read": "managers and approvers named as user groups",
}


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "manifest.yml").read_text())
    return loaded


def test_the_manifest_validates_against_slacks_schema(manifest):
    schema = json.loads((ROOT / "tests/data/slack-app-manifest.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(manifest), key=str)
    assert errors == [], [e.message for e in errors]


def test_the_schema_check_would_catch_a_broken_manifest(manifest):
    schema = json.loads((ROOT / "tests/data/slack-app-manifest.schema.json").read_text())
    broken = json.loads(json.dumps(manifest))
    broken["features"]["slash_commands"][0]["command"] = "onboard"  # no leading slash
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_every_product_command_is_declared_escaped_with_a_usage_hint(manifest):
    declared = {c["command"]: c for c in manifest["features"]["slash_commands"]}
    assert set(declared) == set(SLASH_COMMANDS)
    for command in declared.values():
        assert command["should_escape"] is True, command["command"]
        assert command["usage_hint"].strip(), command["command"]
        assert command["description"].strip(), command["command"]


def test_the_roleup_usage_hint_names_every_subcommand(manifest):
    (roleup,) = [c for c in manifest["features"]["slash_commands"] if c["command"] == "/roleup"]
    for sub in ("help", "integrations", "integration add", "integration remove", "sync", "link"):
        assert sub in roleup["usage_hint"]
    assert "audit" in roleup["usage_hint"]


def _urls(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [u for key, value in node.items() for u in _urls_of(key, value)]
    if isinstance(node, list):
        return [u for item in node for u in _urls(item)]
    return []


def _urls_of(key: str, value: Any) -> list[str]:
    if key in ("url", "request_url", "message_menu_options_url") and isinstance(value, str):
        return [value]
    return _urls(value)


def test_every_url_is_the_one_slack_events_route(manifest):
    urls = _urls(manifest)
    assert len(urls) == len(SLASH_COMMANDS) + 2  # the commands, interactivity, events
    for url in urls:
        assert url.startswith("https://")
        assert url.endswith("/slack/events")
    assert manifest["settings"]["interactivity"]["is_enabled"] is True


def test_the_bot_asks_for_the_least_scopes(manifest):
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(LEAST_BOT_SCOPES)
    assert "user" not in manifest["oauth_config"]["scopes"]


def test_app_home_http_mode_and_single_workspace(manifest):
    home = manifest["features"]["app_home"]
    assert home["home_tab_enabled"] is True
    assert home["messages_tab_enabled"] is True
    assert manifest["settings"]["event_subscriptions"]["bot_events"] == ["app_home_opened"]
    assert manifest["settings"]["socket_mode_enabled"] is False
    assert manifest["settings"]["org_deploy_enabled"] is False
