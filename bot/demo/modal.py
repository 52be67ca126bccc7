"""Filling in a modal field by field, pressing its buttons, and submitting it as Slack would:
block_actions for dispatched inputs and buttons, view_submission on submit, and the app's
`response_action` (errors, update, push, clear) applied to what the person sees next.
"""

from __future__ import annotations

from typing import Any, Protocol

from bot.demo.client import Reply, SignedSlack
from bot.demo.console import Console
from bot.demo.fields import Cancelled, Choices, QuitDemo, ask_element, ask_line
from bot.demo.payloads import (
    INITIAL_KEYS,
    Actor,
    Answers,
    action_of,
    block_actions_in_view,
    block_suggestion,
    state_key,
    view_closed,
    view_submission,
)
from bot.demo.render import INDENT, Control, Numbering, render_view, text_of
from bot.demo.workspace import Workspace


class Desk(Protocol):
    """What a modal needs from the terminal around it."""

    console: Console
    workspace: Workspace
    slack: SignedSlack

    @property
    def actor(self) -> Actor: ...

    @property
    def choices(self) -> Choices: ...

    def settle(self) -> None: ...

    def show_messages(self) -> None: ...

    def report_failure(self, what: str, reply: Reply) -> None: ...


class ModalSession:
    """One person working through their open modal (and any it pushes) until it closes."""

    def __init__(self, desk: Desk, view_id: str) -> None:
        self.desk = desk
        self.view_id: str | None = view_id
        self.answers: Answers = {}
        self.errors: dict[str, str] = {}
        self.shown: list[str] = []  # the modal as last printed, not printed again unchanged

    @property
    def console(self) -> Console:
        return self.desk.console

    def run(self) -> None:
        while self.view_id is not None:
            view = self.desk.workspace.view(self.view_id)
            if view is None:
                self._close()
                continue
            try:
                self._work_on(view)
            except QuitDemo:
                self._cancel(view)
                raise
            except Cancelled:
                self._cancel(view)

    # --- one view --------------------------------------------------------------------
    def _work_on(self, view: dict[str, Any]) -> None:
        numbering = Numbering()
        lines = render_view(view, self.desk.workspace, numbering)
        if not self.errors and lines != self.shown:
            self.console.say("", *lines)
        self.shown = lines
        if self._fill_inputs(view) == "changed":
            return
        inputs = [b for b in view.get("blocks") or [] if b.get("type") == "input"]
        if not inputs and not view.get("submit") and not numbering.controls:
            self.console.say(f"{INDENT}(you read it and close the modal)")
            self._close(quiet=True)
            return
        self._finish(view, numbering)

    def _fill_inputs(self, view: dict[str, Any]) -> str:
        for block in view.get("blocks") or []:
            if block.get("type") != "input":
                continue
            element = block.get("element") or {}
            key = (str(block.get("block_id", "")), str(element.get("action_id", "")))
            if self.errors and key[0] not in self.errors:
                continue
            if not self.errors and key in self.answers:
                continue
            if key[0] in self.errors:
                self.console.say(f"{INDENT}! {self.errors[key[0]]}")
            self.answers[key] = self._ask(view, block, element)
            if (block.get("dispatch_action") or element.get("dispatch_action_config")) and (
                self._dispatch(view, key[0], element) == "changed"
            ):
                self.errors = {}
                return "changed"
        self.errors = {}
        return "done"

    def _ask(self, view: dict[str, Any], block: dict[str, Any], element: dict[str, Any]) -> Any:
        block_id = str(block.get("block_id", ""))

        def search(query: str) -> list[dict[str, Any]]:
            return self._suggest(view, block_id, str(element.get("action_id", "")), query)

        return ask_element(
            self.console,
            {**element, **self._current(block_id, element)},
            label=text_of(block.get("label"), self.desk.workspace),
            optional=bool(block.get("optional")),
            hint=text_of(block.get("hint"), self.desk.workspace),
            directory=self.desk.workspace,
            choices=self.desk.choices,
            search=search,
        )

    def _current(self, block_id: str, element: dict[str, Any]) -> dict[str, Any]:
        """An answer given earlier shows as the field's value when it is asked again."""
        key = (block_id, str(element.get("action_id", "")))
        state = state_key(element)
        if key not in self.answers or state is None:
            return {}
        return {INITIAL_KEYS[state]: self.answers[key]}

    def _suggest(
        self, view: dict[str, Any], block_id: str, action_id: str, query: str
    ) -> list[dict[str, Any]]:
        payload = block_suggestion(
            self.desk.actor,
            view=view,
            block_id=block_id,
            action_id=action_id,
            query=query,
            answers=self.answers,
        )
        reply = self.desk.slack.interact(payload)
        body = reply.json or {}
        if reply.status != 200:
            self.desk.report_failure("loading the options", reply)
        options = list(body.get("options") or [])
        for group in body.get("option_groups") or []:
            options.extend(group.get("options") or [])
        return options

    def _dispatch(self, view: dict[str, Any], block_id: str, element: dict[str, Any]) -> str:
        action_id = str(element.get("action_id", ""))
        picked = self.answers.get((block_id, action_id))
        self._send_action(view, action_of(block_id, element, picked))
        return self._changed(view)

    def _send_action(self, view: dict[str, Any], action: dict[str, Any]) -> None:
        payload = block_actions_in_view(
            self.desk.actor, view=view, answers=self.answers, action=action
        )
        reply = self.desk.slack.interact(payload)
        if reply.status != 200:
            self.desk.report_failure("that click", reply)
        self.desk.settle()
        self.desk.show_messages()

    def _changed(self, view: dict[str, Any]) -> str:
        """After a click: is this modal still open, and does it show something new?"""
        top = self.desk.workspace.open_modal(self.desk.actor.id)
        if top != self.view_id:
            self.view_id = top
            return "changed"
        latest = self.desk.workspace.view(str(view.get("id")))
        return "changed" if latest and latest.get("hash") != view.get("hash") else "same"

    # --- buttons, submit, cancel -----------------------------------------------------
    def _finish(self, view: dict[str, Any], numbering: Numbering) -> None:
        submit = text_of(view.get("submit"), self.desk.workspace)
        close = text_of(view.get("close"), self.desk.workspace) or "Cancel"
        parts = [f"Enter = {submit or close}"]
        if numbering.controls:
            parts.append("a number = press that button")
        if submit:
            parts.append(f'"cancel" = {close}')
        while True:
            typed = ask_line(self.console, f"{INDENT}{', '.join(parts)}> ").strip()
            if not typed:
                if submit:
                    self._submit(view)
                else:
                    self._cancel(view)
                return
            control = numbering.get(int(typed)) if typed.isdigit() else None
            if control is not None:
                self._press(view, control)
                return
            self.console.say(f"{INDENT}! The modal is still open: {', '.join(parts)}")

    def _press(self, view: dict[str, Any], control: Control) -> None:
        element = control.element
        picked: Any = None
        if element.get("type") != "button":
            picked = ask_element(
                self.console,
                element,
                label=control.label,
                optional=False,
                directory=self.desk.workspace,
                choices=self.desk.choices,
            )
            self.answers[(control.block_id, str(element.get("action_id", "")))] = picked
        self._send_action(view, action_of(control.block_id, element, picked))
        self._changed(view)

    def _submit(self, view: dict[str, Any]) -> None:
        reply = self.desk.slack.interact(
            view_submission(self.desk.actor, view=view, answers=self.answers)
        )
        if reply.status != 200:
            self.desk.report_failure("submitting the form", reply)
            return
        body = reply.json or {}
        action = body.get("response_action")
        user = self.desk.actor.id
        if action == "errors":
            self.errors = {str(k): str(v) for k, v in (body.get("errors") or {}).items()}
            self.console.say(f"{INDENT}The form is still open; fix what is marked:")
            if not self._error_fields(view):
                # An error on a block that is not an input still keeps the modal open.
                for message in self.errors.values():
                    self.console.say(f"{INDENT}! {message}")
                self.errors = {}
            return
        if action == "update" and isinstance(body.get("view"), dict):
            self.desk.workspace.replace_view(str(self.view_id), body["view"])
            self.answers = {}
        elif action == "push" and isinstance(body.get("view"), dict):
            self.view_id = self.desk.workspace.push_view(user, body["view"])
            self.answers = {}
        elif action == "clear":
            self.desk.workspace.close_modal(user, all_of_them=True)
            self.view_id = None
            self.console.say(f"{INDENT}(the modal closed)")
        else:
            self._close()
        self.desk.settle()
        self.desk.show_messages()

    def _error_fields(self, view: dict[str, Any]) -> bool:
        inputs = {
            str(b.get("block_id")) for b in view.get("blocks") or [] if b.get("type") == "input"
        }
        return any(block_id in inputs for block_id in self.errors)

    def _cancel(self, view: dict[str, Any]) -> None:
        if view.get("notify_on_close"):
            self.desk.slack.interact(view_closed(self.desk.actor, view=view, answers=self.answers))
        self.desk.workspace.close_modal(self.desk.actor.id, all_of_them=True)
        self.view_id = None
        self.console.say(f"{INDENT}(you closed the modal)")
        self.desk.settle()
        self.desk.show_messages()

    def _close(self, *, quiet: bool = False) -> None:
        self.desk.workspace.close_modal(self.desk.actor.id)
        self.view_id = self.desk.workspace.open_modal(self.desk.actor.id)
        self.answers = {}
        self.errors = {}
        if self.view_id is None and not quiet:
            self.console.say(f"{INDENT}(the modal closed)")
