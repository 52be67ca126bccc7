"""The Extend flow of something time-bound (a grant, an account): a button opening a modal about
the row, then the submission filed as a request from the modal. Each kind says what the row is
(`heading`), how its new end is chosen (`fields`, `parse`) and where a misreading is shown
(`errors`); who may extend is the services' to decide, never who got the button."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.services.container import Core
from bot.services.errors import InvalidInput, RoleUpError
from bot.services.reasons import Justification
from bot.slack import blocks as bk
from bot.slack.approval_messages import ask_in_modal
from bot.slack.buttons import grant_id_of
from bot.slack.errors import modal_button
from bot.slack.justification import JustificationFields

if TYPE_CHECKING:
    from storage.models import Request

Row = TypeVar("Row")
End = TypeVar("End")


class ExtendModal(bk.RowModal, Generic[Row, End]):
    BUTTON: ClassVar[str]  # the action id of the Extend button that opens it
    DOING: ClassVar[str]  # what it does, in logs and failure messages
    ACTION = "value"

    @classmethod
    def heading(cls, row: Row) -> str:
        raise NotImplementedError

    @classmethod
    def fields(cls) -> list[bk.Block]:
        raise NotImplementedError

    @classmethod
    def row_id(cls, row: Row) -> int:
        raise NotImplementedError

    @classmethod
    def parse(cls, view: Any) -> tuple[int, End]:
        raise NotImplementedError

    @classmethod
    def errors(cls, exc: RoleUpError) -> dict[str, str]:
        """The modal's errors for a failure of `parse`."""
        raise NotImplementedError

    @classmethod
    def build(cls, row: Row) -> dict[str, Any]:
        blocks = [bk.section(cls.heading(row)), *cls.fields(), *JustificationFields.blocks()]
        return cls.modal(cls.row_id(row), blocks, "Extend")


def register_extend(
    app: App,
    core: Core,
    modal: type[ExtendModal[Row, End]],
    extendable: Callable[[Core, int | None], Row],
    ask: Callable[[Core, str, int, End, Justification], Request],
) -> None:
    """The modal's button (its value a small row id, re-read by `extendable`) and the
    submission of `modal`, filed by `ask(core, actor, row id, new end, justification)`."""

    def build(body: dict[str, Any]) -> dict[str, Any]:
        return modal.build(extendable(core, grant_id_of(body)))

    app.action(modal.BUTTON)(modal_button(core.after_ack, modal.DOING, build))

    # Bolt passes a listener's arguments by their names: `view` is the submitted view.
    def submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        try:
            row_id, end = modal.parse(view)
        except RoleUpError as exc:
            ack(response_action="errors", errors=modal.errors(exc))
            return
        try:
            why = JustificationFields.parse(view)
        except InvalidInput as exc:
            ack(response_action="errors", errors=JustificationFields.errors(exc))
            return
        actor = body["user"]["id"]
        ask_in_modal(
            core.decisions,
            ack,
            client,
            body,
            modal.TITLE,
            modal.DOING,
            lambda: ask(core, actor, row_id, end, why),
        )

    app.view(modal.CALLBACK_ID)(submitted)
