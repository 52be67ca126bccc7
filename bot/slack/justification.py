"""The *Reason* and *Ticket* fields every request modal carries (/onboard, /groups, the invite).

Self-contained: a modal appends `JustificationFields.blocks()` and reads them back with
`JustificationFields.parse(view)`; the values are checked by bot.services.reasons, and a reason
an integration requires (`approvals.check_reason`) by the submission's listener, in the ack when
the store answers in time (bot.slack.commands.checked_within), else in the modal after it.
"""

from __future__ import annotations

from typing import Any

from bot.services.errors import InvalidInput
from bot.services.reasons import MAX_REASON, MAX_TICKET_URL, Justification, clean
from bot.slack import blocks as bk
from bot.slack.state import ViewState


class JustificationFields:
    REASON = "reason"
    TICKET = "ticket"
    ACTION = "value"
    #: error field -> block id, merged into a modal's own FIELDS
    FIELDS = {"reason": REASON, "ticket": TICKET}

    @classmethod
    def blocks(cls, values: Justification | None = None) -> list[bk.Block]:
        # Optional for Slack: an integration that requires a reason says so inline on submit.
        given = values or Justification()
        reason = bk.text_input(
            cls.ACTION, multiline=True, max_length=MAX_REASON, initial_value=given.reason
        )
        ticket = bk.text_input(
            cls.ACTION,
            max_length=MAX_TICKET_URL,
            placeholder="SEC-123 or https://…",
            initial_value=given.ticket,
        )
        return [
            bk.input_block(
                cls.REASON,
                "Reason",
                reason,
                optional=True,
                hint="Why this is needed: shown to the approvers and kept in the audit.",
            ),
            bk.input_block(cls.TICKET, "Ticket", ticket, optional=True),
        ]

    @classmethod
    def parse(cls, view: Any) -> Justification:
        """The reason and ticket as typed, or InvalidInput whose .field names the block."""
        state = ViewState(view)
        return clean(state.raw_text(cls.REASON, cls.ACTION), state.text(cls.TICKET, cls.ACTION))

    @classmethod
    def errors(cls, exc: InvalidInput) -> dict[str, str]:
        return {cls.FIELDS.get(exc.field or "", cls.REASON): exc.user_message[:150]}
