"""Asking a person for one Block Kit element's value, the way Slack's client would let them pick.

Each answer comes back in the element's state shape (see bot.demo.payloads): a string for text
inputs, an option object or a list of them for menus, a user or channel id for pickers.
Options can be picked by number or by their text/value; several are separated by commas.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.demo.console import Console
from bot.demo.payloads import MULTI_KEYS, as_selected, initial_answer, state_key
from bot.demo.render import INDENT, Directory, option_label, options_of, text_of


class Cancelled(Exception):
    """The person typed `cancel` (or input ended) while filling something in."""


class QuitDemo(Cancelled):
    """The person typed `quit` while filling something in: close it, then leave the demo."""


CANCEL_WORDS = ("cancel", "/cancel")
QUIT_WORDS = ("quit", "exit", "/quit")
YES, NO = ("y", "yes"), ("n", "no")
Search = Callable[[str], list[dict[str, Any]]]


@dataclass
class Choices:
    """Who and where can be picked in users/channel selects."""

    users: dict[str, str]  # id -> "@name (Real Name)"
    channels: dict[str, str]  # id -> "#name"


def ask_line(console: Console, prompt: str) -> str:
    line = console.ask(prompt)
    if line is None or line.strip().lower() in QUIT_WORDS:
        raise QuitDemo
    if line.strip().lower() in CANCEL_WORDS:
        raise Cancelled
    return line


def ask_element(
    console: Console,
    element: dict[str, Any],
    *,
    label: str,
    optional: bool,
    directory: Directory,
    choices: Choices,
    search: Search | None = None,
    hint: str = "",
) -> Any:
    """Prompt until the answer is acceptable; Enter keeps what the element already shows."""
    kind = str(element.get("type", ""))
    key = state_key(element)
    current = initial_answer(element)
    heading = f"{INDENT}{label}{' (optional)' if optional else ''}"
    if hint:
        heading += f" - {hint}"
    console.say(heading)
    if key is None:
        console.say(f"{INDENT}  (a {kind} cannot be filled in here; left as it is)")
        return current
    while True:
        answer = _ask_once(console, element, key, current, directory, choices, search)
        problem = _problem(element, key, answer, optional)
        if problem is None:
            return answer
        console.say(f"{INDENT}  ! {problem}")


def _ask_once(
    console: Console,
    element: dict[str, Any],
    key: str,
    current: Any,
    directory: Directory,
    choices: Choices,
    search: Search | None,
) -> Any:
    kind = str(element.get("type", ""))
    multi = key in MULTI_KEYS
    if key == "value":
        shown = f" [{current}]" if current else ""
        typed = ask_line(console, f"{INDENT}  type{shown}> ")
        return typed if typed else current
    if key in ("selected_option", "selected_options"):
        options = options_of(element)
        if kind.endswith("external_select"):
            options = _search(console, search)
        return _pick_options(console, options, multi, current, directory)
    if key in ("selected_user", "selected_users"):
        return _pick_ids(console, choices.users, multi, current, "people")
    if key in ("selected_channel", "selected_channels", "selected_conversation"):
        return _pick_ids(console, choices.channels, multi, current, "channels")
    if key == "selected_conversations":
        return _pick_ids(console, choices.channels, multi, current, "channels")
    if key == "selected_date":
        typed = ask_line(console, f"{INDENT}  date, YYYY-MM-DD{_shown(current)}> ")
        return typed.strip() or current
    if key == "selected_date_time":
        return _ask_date_time(console, current)
    typed = ask_line(console, f"{INDENT}  time, HH:MM{_shown(current)}> ")
    return typed.strip() or current


def _ask_date_time(console: Console, current: Any) -> Any:
    """A moment as Slack's picker sends it (seconds since the epoch): `YYYY-MM-DD HH:MM` in
    UTC, or `+2m` / `+3h` / `+1d` from now."""
    shown = ""
    if isinstance(current, int):
        shown = datetime.fromtimestamp(current, tz=UTC).strftime("%Y-%m-%d %H:%M")
    while True:
        typed = ask_line(console, f"{INDENT}  UTC, YYYY-MM-DD HH:MM or +2m{_shown(shown)}> ")
        typed = typed.strip()
        if not typed:
            return current
        relative = re.fullmatch(r"\+(\d{1,4})([mhd])", typed)
        if relative:
            unit = {"m": 60, "h": 3600, "d": 86400}[relative.group(2)]
            return int(time.time()) + int(relative.group(1)) * unit
        try:
            moment = datetime.strptime(typed, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
        except ValueError:
            console.say(f"{INDENT}  ! like 2026-12-31 17:30, or +2m")
            continue
        return int(moment.timestamp())


def _shown(current: Any) -> str:
    return f" [{current}]" if current else ""


def _search(console: Console, search: Search | None) -> list[dict[str, Any]]:
    if search is None:
        return []
    # Slack asks the app only once something is typed, so Enter leaves the field as it is.
    query = ask_line(console, f"{INDENT}  type to search (Enter to skip)> ").strip()
    if not query:
        return []
    options = search(query)
    if not options:
        console.say(f"{INDENT}  (no matches)")
    return options


def _pick_options(
    console: Console,
    options: list[dict[str, Any]],
    multi: bool,
    current: Any,
    directory: Directory,
) -> Any:
    if not options:
        return current
    for number, option in enumerate(options, start=1):
        console.say(f"{INDENT}  {number}) {option_label(option, directory)}")
    if multi:
        now = ", ".join(text_of(o.get("text"), directory) for o in current or [])
        what = "the new selection" if now else "pick any"
        prompt = f"{INDENT}  {what}, comma separated{f' [{now}]' if now else ''}> "
    else:
        now = text_of((current or {}).get("text"), directory) if current else ""
        prompt = f"{INDENT}  pick one{f' [{now}]' if now else ''}> "
    while True:
        typed = ask_line(console, prompt).strip()
        if not typed:
            return current
        if len(options) == 1 and typed.lower() in YES + NO:
            # A lone checkbox ("Generate a password") reads as a yes/no question.
            typed = "1" if typed.lower() in YES else ""
            if not typed:
                return []
        picked = _resolve(typed, options, directory)
        if picked is None:
            console.say(f"{INDENT}  ! pick from the list, by number or by name")
        elif not multi and len(picked) != 1:
            console.say(f"{INDENT}  ! pick just one")
        else:
            selected = [as_selected(o) for o in picked]
            return selected if multi else selected[0]


def _resolve(
    typed: str, options: list[dict[str, Any]], directory: Directory
) -> list[dict[str, Any]] | None:
    picked: list[dict[str, Any]] = []
    for token in (t.strip() for t in typed.split(",")):
        if not token:
            continue
        match = _match(token, options, directory)
        if match is None:
            return None
        if match not in picked:
            picked.append(match)
    return picked


def _match(
    token: str, options: list[dict[str, Any]], directory: Directory
) -> dict[str, Any] | None:
    if token.isdigit() and 1 <= int(token) <= len(options):
        return options[int(token) - 1]
    lowered = token.lower()
    for option in options:
        names = (text_of(option.get("text"), directory), str(option.get("value", "")))
        if lowered in (n.lower() for n in names):
            return option
    return None


def _pick_ids(console: Console, known: dict[str, str], multi: bool, current: Any, what: str) -> Any:
    listing = ", ".join(known.values())
    console.say(f"{INDENT}  {what}: {listing}")
    now = ", ".join(known.get(i, i) for i in current or []) if multi else known.get(current or "")
    prompt = f"{INDENT}  {'any, comma separated' if multi else 'one'}{_shown(now)}> "
    while True:
        typed = ask_line(console, prompt).strip()
        if not typed:
            return current
        ids = [_id_of(t.strip(), known) for t in typed.split(",") if t.strip()]
        if all(ids) and (multi or len(ids) == 1):
            return ids if multi else ids[0]
        console.say(f"{INDENT}  ! type a name from the list (or an id)")


def _id_of(token: str, known: dict[str, str]) -> str | None:
    if token in known:
        return token
    bare = token.lstrip("@#").lower()
    for item_id, label in known.items():
        name = label.split(" ", 1)[0].lstrip("@#").lower()
        if bare in (name, item_id.lower()):
            return item_id
    # An id Slack would accept even if the demo does not know its person.
    if token[:1] in ("U", "W", "C", "G", "D") and token[1:].isalnum() and token.isupper():
        return token
    return None


def _problem(element: dict[str, Any], key: str, answer: Any, optional: bool) -> str | None:
    """What Slack's client itself refuses before sending anything."""
    empty = answer in (None, "", [])
    if empty:
        return None if optional else "This field is required."
    if key == "value" and isinstance(answer, str):
        low, high = element.get("min_length"), element.get("max_length")
        if low and len(answer) < int(low):
            return f"Please enter at least {low} characters."
        if high and len(answer) > int(high):
            return f"Please enter no more than {high} characters."
    most = element.get("max_selected_items")
    if key in MULTI_KEYS and most and len(answer) > int(most):
        return f"Pick at most {most}."
    return None
