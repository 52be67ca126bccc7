"""The terminal that plays Slack: one line at a time, as the person whose turn it is.

A line is a slash command (sent as a signed request to the real app), a number (presses that
button of the latest messages), `switch` (become the other person), `messages`, `help` or
`quit`. After each step it waits for the app to finish what it started, then shows what the
app sent to this person's Slack: messages, updates, and modals to fill in.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from bot.demo.client import Reply, SignedSlack
from bot.demo.console import Console
from bot.demo.fields import QUIT_WORDS, Cancelled, Choices, QuitDemo, ask_element
from bot.demo.modal import ModalSession
from bot.demo.payloads import (
    Actor,
    action_of,
    block_actions_in_view,
    block_actions_on_message,
    new_trigger_id,
)
from bot.demo.render import INDENT, Control, Numbering, render_blocks, render_message, text_of
from bot.demo.workspace import Message, Person, Post, ResponseTarget, Workspace

MENTION = re.compile(r"(?<![\w<])([@#])([a-z0-9][a-z0-9._-]*)", re.IGNORECASE)
RECENT = 3


class Terminal:
    """The read-and-show loop over a running demo world."""

    def __init__(
        self,
        *,
        console: Console,
        workspace: Workspace,
        slack: SignedSlack,
        players: list[Person],
        command_channel: str,
        settle: Callable[[], bool],
    ) -> None:
        self.console = console
        self.workspace = workspace
        self.slack = slack
        self.players = players
        self.person = players[0]
        self.command_channel = command_channel
        self._settle = settle
        # What each number presses: a button of a message, or of the Home tab (None).
        self.picks: dict[str, dict[int, tuple[Control, Message | None]]] = {
            p.id: {} for p in players
        }

    # --- what ModalSession needs ---------------------------------------------------------
    @property
    def actor(self) -> Actor:
        return Actor(self.person.id, self.person.name)

    @property
    def choices(self) -> Choices:
        users = {p.id: f"@{p.name} ({p.real_name})" for p in self.workspace.people.values()}
        channels = {c.id: f"#{c.name}" for c in self.workspace.channels.values()}
        return Choices(users, channels)

    def settle(self) -> None:
        if not self._settle():
            self.console.say(f"{INDENT}(RoleUp is still working; its answer will show later)")

    def report_failure(self, what: str, reply: Reply) -> None:
        if reply.status == 404:
            self.console.say(f"{INDENT}(RoleUp has no handler for {what} yet: nothing happened)")
        else:
            self.console.say(f"{INDENT}Slack would show: {what} failed (HTTP {reply.status})")

    # --- the loop --------------------------------------------------------------------
    def run(self) -> int:
        self.console.say(*self.help_text())
        self.catch_up()
        while True:
            line = self.console.ask(f"{self.person.name}> ")
            if line is None or line.strip().lower() in QUIT_WORDS:
                return self.bye()
            try:
                self.handle(line.strip())
            except QuitDemo:
                return self.bye()
            except Cancelled:
                self.console.say(f"{INDENT}(cancelled)")

    def bye(self) -> int:
        self.console.say("Bye: the demo's database and IAM are thrown away.")
        return 0

    def handle(self, line: str) -> None:
        if not line:
            return
        word = line.split()[0].lower()
        if line.startswith("/"):
            self.slash_command(line)
        elif line.isdigit():
            self.press(int(line))
        elif word == "switch":
            self.switch(line.split()[1] if len(line.split()) > 1 else None)
        elif word in ("help", "?"):
            self.console.say(*self.help_text())
        elif word in ("messages", "look"):
            self.show_recent()
        elif word == "home":
            self.open_home()
        elif word == "wait":
            self.wait(line.split()[1] if len(line.split()) > 1 else "")
        else:
            self.console.say(
                f"{INDENT}Type a slash command such as /accounts, a number to press a button, "
                "`switch`, `help` or `quit`."
            )

    def help_text(self) -> list[str]:
        main = " and ".join(f"{p.real_name} ({p.role})" for p in self.players[:2])
        extra = "".join(f", or {p.real_name} ({p.role})" for p in self.players[2:])
        return [
            f"You play Slack for {main}{extra}. You are now {self.person.real_name}.",
            "  /accounts [integration] [filter]  list the IAM users RoleUp knows",
            "  /onboard                          create an IAM user through a form",
            "  /offboard <iam-user | @person>    remove a user (an approver approves)",
            "  /groups <iam-user>                change someone's groups",
            "  /roleup help                      everything else RoleUp can do",
            "  1, 2, ...                         press the numbered button",
            "  messages                          show your latest messages again",
            "  home                              open RoleUp's App Home tab",
            "  wait [seconds]                    let time pass (a grant ending), then look",
            "  switch [name]                     become the other person (or `switch alice`)",
            "  help, quit                        this list; leave (nothing is kept)",
        ]

    # --- sending -----------------------------------------------------------------------
    def slash_command(self, line: str) -> None:
        command, _, text = line.partition(" ")
        channel = self.workspace.channels[self.command_channel]
        target = ResponseTarget(self.person.id, channel.id)
        reply = self.slack.command(
            self.actor,
            command,
            self.escape_like_slack(text.strip()),
            channel_id=channel.id,
            channel_name=channel.name,
            trigger_id=new_trigger_id(self.actor),
            response_url=self.workspace.response_url(target),
        )
        if reply.status == 404:
            self.console.say(f"{INDENT}Slack would show: {command} is not a command RoleUp knows.")
        elif reply.status != 200:
            self.console.say(
                f'{INDENT}Slack would show: {command} failed with the error "dispatch_failed"'
                f" (HTTP {reply.status})"
            )
        else:
            self.show_ack(reply, channel.id)
        self.settle()
        self.catch_up()

    def escape_like_slack(self, text: str) -> str:
        """What Slack sends for typed text with should_escape on: &, <, > as entities, and
        @person / #channel of the workspace as <@U..|name> / <#C..|name>."""
        escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        people = {p.name.lower(): p for p in self.workspace.people.values()}
        channels = {c.name.lower(): c for c in self.workspace.channels.values()}

        def mention(match: re.Match[str]) -> str:
            sigil, name = match.group(1), match.group(2)
            if sigil == "@" and name.lower() in people:
                return f"<@{people[name.lower()].id}|{people[name.lower()].name}>"
            if sigil == "#" and name.lower() in channels:
                return f"<#{channels[name.lower()].id}|{channels[name.lower()].name}>"
            return match.group(0)

        return MENTION.sub(mention, escaped)

    def show_ack(self, reply: Reply, channel: str) -> None:
        """A command's immediate answer (Bolt's `ack(text)`) is an ephemeral message."""
        body = reply.json
        if body is None and reply.text.strip():
            body = {"text": reply.text}  # Bolt sends a bare `ack("text")` as plain text
        if not body or not (body.get("text") or body.get("blocks")):
            return
        content: dict[str, Any] = {
            k: body[k] for k in ("text", "blocks", "attachments") if k in body
        }
        in_channel = body.get("response_type") == "in_channel"
        if any(block.get("type") == "actions" for block in content.get("blocks") or ()):
            # Its buttons can be pressed: shown with the messages that follow, numbered.
            self.workspace.on_ack(self.person.id, channel, content, in_channel)
            return
        message = Message(channel, "0", content, frozenset({self.person.id}), not in_channel)
        self.show_post(Post("new", message=message), Numbering(), interactive=False)

    def press(self, number: int) -> None:
        pick = self.picks[self.person.id].get(number)
        if pick is None:
            self.console.say(f"{INDENT}There is no button {number} on your screen right now.")
            return
        control, message = pick
        element = control.element
        if element.get("url"):
            self.console.say(f"{INDENT}(your browser would open {element['url']})")
        if not self.confirmed(element):
            return
        picked = None
        if element.get("type") != "button":
            picked = self.pick_value(control)
        if message is None:
            self.press_in_home(control, picked)
            return
        channel = self.workspace.channels.get(message.channel)
        payload = block_actions_on_message(
            self.actor,
            channel={"id": message.channel, "name": channel.name if channel else message.channel},
            message=message.payload_message,
            is_ephemeral=message.ephemeral,
            response_url=self.workspace.response_url(
                ResponseTarget(self.person.id, message.channel, (message.channel, message.ts))
            ),
            action=action_of(control.block_id, element, picked),
        )
        reply = self.slack.interact(payload)
        if reply.status != 200:
            self.report_failure(f"the {control.label!r} button", reply)
        self.settle()
        self.catch_up()

    def press_in_home(self, control: Control, picked: Any) -> None:
        """A button of the Home tab (an access review item, say): a click in a view, after
        which Slack shows the tab as the app published it again."""
        view = self.workspace.homes.get(self.person.id, {})
        action = action_of(control.block_id, control.element, picked)
        reply = self.slack.interact(
            block_actions_in_view(self.actor, view=view, answers={}, action=action)
        )
        if reply.status != 200:
            self.report_failure(f"the {control.label!r} button", reply)
        self.settle()
        self.catch_up()
        self.show_home()

    def confirmed(self, element: dict[str, Any]) -> bool:
        confirm = element.get("confirm")
        if not confirm:
            return True
        w = self.workspace
        self.console.say(
            f"{INDENT}{text_of(confirm.get('title'), w)}: {text_of(confirm.get('text'), w)}"
        )
        yes = text_of(confirm.get("confirm"), w) or "Yes"
        answer = self.console.ask(f"{INDENT}{yes}? [y/N]> ")
        return (answer or "").strip().lower() in ("y", "yes", yes.lower())

    def pick_value(self, control: Control) -> Any:
        element = control.element
        if element.get("type") == "overflow":
            element = {**element, "type": "static_select"}
        return ask_element(
            self.console,
            element,
            label=control.label,
            optional=False,
            directory=self.workspace,
            choices=self.choices,
        )

    # --- showing -----------------------------------------------------------------------
    def switch(self, name: str | None) -> None:
        if name:
            wanted = name.lstrip("@").lower()
            found = [p for p in self.players if wanted in (p.name.lower(), p.id.lower())]
            if not found:
                names = ", ".join(p.name for p in self.players)
                self.console.say(f"{INDENT}You can be {names}.")
                return
            self.person = found[0]
        else:
            # Plain `switch` goes back and forth between the manager and the approver.
            first, second = self.players[0], self.players[1]
            self.person = second if self.person == first else first
        self.console.say(f"You are now {self.person.real_name} ({self.person.role}).")
        self.catch_up()

    def open_home(self) -> None:
        """What Slack does when someone opens the app's Home tab: an app_home_opened event."""
        channel = "D" + self.person.id
        reply = self.slack.event(
            {"type": "app_home_opened", "user": self.person.id, "channel": channel, "tab": "home"}
        )
        if reply.status != 200:
            self.report_failure("opening the Home tab", reply)
        self.settle()
        self.show_home()
        self.catch_up()

    def show_home(self) -> None:
        """The Home tab as last published for this person; its buttons get numbers."""
        view = self.workspace.homes.get(self.person.id)
        if view is None:
            self.console.say(f"{INDENT}(RoleUp has no Home tab to show)")
            return
        numbering = Numbering()
        self.console.say("", "--- RoleUp, Home tab")
        self.console.say(*render_blocks(list(view.get("blocks") or []), self.workspace, numbering))
        if numbering.controls:
            self.picks[self.person.id] = {
                c.number: (c, None) for c in numbering.controls if c.number is not None
            }

    def wait(self, seconds: str) -> None:
        """Let time pass (up to three minutes), showing what arrives meanwhile."""
        if seconds and not (seconds.isdigit() and 1 <= int(seconds) <= 180):
            self.console.say(f"{INDENT}`wait` takes a number of seconds, from 1 to 180.")
            return
        total = int(seconds or 30)
        self.console.say(f"{INDENT}(waiting {total} s...)")
        deadline = time.monotonic() + total
        while time.monotonic() < deadline:
            time.sleep(min(1.0, deadline - time.monotonic()))
            if self.workspace.feeds[self.person.id]:
                self.settle()
                self.show_messages()
        self.settle()
        self.show_messages()

    def catch_up(self) -> None:
        """Show what arrived for the current person, then let them fill any modal."""
        self.show_messages()
        view_id = self.workspace.open_modal(self.person.id)
        if view_id is not None:
            ModalSession(self, view_id).run()

    def show_messages(self) -> None:
        posts = [p for p in _latest_only(self.workspace.drain(self.person.id)) if p.message]
        if not posts:
            return
        numbering = Numbering()
        picks: dict[int, tuple[Control, Message | None]] = {}
        for post in posts:
            before = len(numbering.controls)
            self.show_post(post, numbering, interactive=True)
            assert post.message is not None
            for control in numbering.controls[before:]:
                assert control.number is not None
                picks[control.number] = (control, post.message)
        if picks:
            self.picks[self.person.id] = picks

    def show_recent(self) -> None:
        for message in self.workspace.recent(self.person.id, RECENT):
            self.workspace.feeds[self.person.id].append(Post("new", message=message))
        if not self.workspace.feeds[self.person.id]:
            self.console.say(f"{INDENT}(no messages yet)")
        self.show_messages()

    def show_post(self, post: Post, numbering: Numbering, *, interactive: bool) -> None:
        message = post.message
        assert message is not None
        mine = self.person.id in message.audience
        heading = f"--- RoleUp in {self.workspace.where(message)}"
        if message.ephemeral:
            heading += " (only visible to you)" if mine else ""
        if not mine:
            names = ", ".join(self.workspace.user_label(u) for u in sorted(message.audience))
            heading = f"--- RoleUp to {names} (you see it because you run the demo)"
        if post.kind == "updated":
            heading += " (updated)"
        if post.kind == "deleted":
            self.console.say("", heading + " (deleted)")
            return
        self.console.say("", heading)
        numbered = numbering if interactive and mine else None
        self.console.say(*render_message(message.content, self.workspace, numbered))


def _latest_only(posts: list[Post]) -> list[Post]:
    """Several updates of one message in a row show once, as it ends up (a new one stays new)."""
    order: list[tuple[str, str] | int] = []
    latest: dict[tuple[str, str] | int, Post] = {}
    for index, post in enumerate(posts):
        key: tuple[str, str] | int = (
            (post.message.channel, post.message.ts) if post.message else index
        )
        if key in latest:
            kind = "new" if latest[key].kind == "new" and post.kind != "deleted" else post.kind
            post = Post(kind, message=post.message, view_id=post.view_id)
            order.remove(key)
        order.append(key)
        latest[key] = post
    return [latest[key] for key in order]
