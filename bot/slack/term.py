"""*For* and *Until*: how long added groups last, as two modal fields read back into a
bot.services.grants.Term (the /groups, onboarding and Extend modals share them)."""

from __future__ import annotations

from bot.services import grants
from bot.services.errors import InvalidInput
from bot.slack import blocks as bk
from bot.slack.state import ViewState


def term_blocks(
    for_block: str,
    until_block: str,
    action: str,
    *,
    permanent: bool = True,
    chosen: grants.Term | None = None,
) -> list[bk.Block]:
    """*For* (Permanent, 1 hour … 30 days, or Until) and *Until* (a date and time): how long
    the groups added last, `chosen` shown as picked (a form sent back). Read back with
    `parse_term`."""
    choices = [
        (label, value)
        for value, label, _length in grants.DURATIONS
        if permanent or value != grants.PERMANENT
    ]
    choices.append(("Until a date and time…", grants.UNTIL))
    picked = _choice_of(chosen) if chosen is not None else None
    if picked is None and permanent:
        picked = grants.PERMANENT
    lasting = bk.static_select(action, choices, initial=picked)
    ends = chosen.until if chosen is not None else None
    until = bk.datetimepicker(action, initial=int(ends.timestamp()) if ends else None)
    return [
        bk.input_block(
            for_block,
            "For",
            lasting,
            optional=permanent,
            hint="How long the groups added last; RoleUp removes them at the end.",
        ),
        bk.input_block(
            until_block,
            "Until",
            until,
            optional=True,
            hint="Only with For: Until a date and time (UTC, at most 90 days ahead).",
        ),
    ]


def parse_term(state: ViewState, for_block: str, until_block: str, action: str) -> grants.Term:
    """The term asked for, or InvalidInput with `field` set to the block to show it by."""
    choice = state.selected(for_block, action)
    until = state.date_time(until_block, action)
    try:
        return grants.term_of(choice, until)
    except InvalidInput as exc:
        exc.field = until_block if choice == grants.UNTIL else for_block
        raise


def _choice_of(term: grants.Term) -> str | None:
    if term.until is not None:
        return grants.UNTIL
    if term.seconds is None:
        return grants.PERMANENT
    for value, length in grants.LENGTHS.items():
        if length is not None and int(length.total_seconds()) == term.seconds:
            return value
    return None
