"""The demo's Slack workspace: its people and channels, and what each person sees.

It listens to every call the app makes to the Slack stand-in and turns it into posts on the
screens of the people who would see it in Slack: a channel message for its members, an
ephemeral message or a response_url reply for one person, a DM for its recipient, a modal for
whoever's trigger_id opened it. The terminal drains a person's new posts after each step.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from bot.demo.fake_slack import Call, FakeSlackApi
from bot.demo.payloads import user_of_trigger

MESSAGE_FIELDS = ("text", "blocks", "attachments", "thread_ts")


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    real_name: str
    role: str = ""


@dataclass
class Channel:
    id: str
    name: str
    members: set[str] = field(default_factory=set)


@dataclass
class Message:
    """A message on a channel as the demo keeps it (ephemeral ones only for their person)."""

    channel: str
    ts: str
    content: dict[str, Any]
    audience: frozenset[str]
    ephemeral: bool = False
    deleted: bool = False

    @property
    def payload_message(self) -> dict[str, Any]:
        return {**{k: v for k, v in self.content.items() if k in MESSAGE_FIELDS}, "ts": self.ts}


@dataclass
class Post:
    """One thing that appeared on a person's screen."""

    kind: str  # "new", "updated", "deleted", "modal"
    message: Message | None = None
    view_id: str | None = None


@dataclass(frozen=True)
class ResponseTarget:
    """Where a response_url reply lands: the person, their channel, and the source message."""

    user: str
    channel: str
    message: tuple[str, str] | None = None


class Workspace:
    def __init__(self, api: FakeSlackApi) -> None:
        self.api = api
        self.people: dict[str, Person] = {}
        self.channels: dict[str, Channel] = {}
        self.messages: dict[tuple[str, str], Message] = {}
        self.feeds: dict[str, list[Post]] = {}
        self.modals: dict[str, list[str]] = {}
        self.targets: dict[str, ResponseTarget] = {}
        self.homes: dict[str, dict[str, Any]] = {}  # user -> their published App Home view
        self._lock = threading.RLock()
        api.subscribe(self.on_call)

    # --- directory -----------------------------------------------------------------------
    def add_person(self, person: Person) -> Person:
        self.people[person.id] = person
        self.feeds.setdefault(person.id, [])
        self.api.add_user(person.id, person.name, person.real_name)
        return person

    def add_channel(self, channel_id: str, name: str, members: set[str]) -> Channel:
        channel = Channel(channel_id, name, set(members))
        self.channels[channel_id] = channel
        return channel

    def user_label(self, user_id: str) -> str:
        person = self.people.get(user_id)
        return person.real_name if person else user_id

    def channel_label(self, channel_id: str) -> str:
        if channel_id in self.channels:
            return self.channels[channel_id].name
        if channel_id[:1] in ("D", "U", "W") and channel_id[1:] in self.people:
            return "DM with " + self.user_label(channel_id[1:])
        return channel_id

    def where(self, message: Message) -> str:
        """`#channel`, `DM` or `DM to Someone` for a message's heading."""
        owner = self._dm_owner(message.channel)
        if owner is not None:
            return "a direct message" if owner in self.people else f"a DM to {owner}"
        return "#" + self.channel_label(message.channel)

    def _dm_owner(self, channel: str) -> str | None:
        if channel[:1] in ("U", "W"):
            return channel
        if channel[:1] == "D":
            return channel[1:]
        return None

    def audience_of(self, channel: str) -> frozenset[str]:
        owner = self._dm_owner(channel)
        if owner is not None:
            return frozenset({owner})
        known = self.channels.get(channel)
        # A channel the demo does not know (a typo in a setting, say) is shown to everyone.
        return frozenset(known.members if known else self.people)

    # --- response_url ------------------------------------------------------------------
    def response_url(self, target: ResponseTarget) -> str:
        token = uuid.uuid4().hex
        with self._lock:
            self.targets[token] = target
        return self.api.response_url_base + token

    # --- what the app did --------------------------------------------------------------
    def on_call(self, call: Call) -> None:
        with self._lock:
            if call.method.startswith("response_url:"):
                self._on_response_url(call)
            elif call.method in ("chat.postMessage", "chat.postEphemeral"):
                self._on_post(call)
            elif call.method == "chat.update":
                self._on_update(call)
            elif call.method == "chat.delete":
                self._on_delete(call)
            elif call.method in ("views.open", "views.push"):
                self._on_view_open(call)
            elif call.method == "views.update":
                self._on_view_update(call)
            elif call.method == "views.publish" and call.response.get("ok"):
                self.homes[str(call.params.get("user_id"))] = dict(call.response.get("view") or {})

    def on_ack(self, user: str, channel: str, content: dict[str, Any], in_channel: bool) -> None:
        """A command answered in its ack with buttons: a message like any other, clickable."""
        audience = self.audience_of(channel) if in_channel else frozenset({user})
        with self._lock:
            ts = f"{time.time():.6f}"
            self._publish(Message(channel, ts, content, audience, not in_channel), "new")

    def _on_post(self, call: Call) -> None:
        if not call.response.get("ok"):
            return
        params = call.params
        channel = str(call.response.get("channel") or params.get("channel", ""))
        ts = str(call.response.get("ts") or call.response.get("message_ts"))
        ephemeral = call.method == "chat.postEphemeral"
        audience = frozenset({str(params.get("user"))}) if ephemeral else self.audience_of(channel)
        content = {k: params[k] for k in MESSAGE_FIELDS if k in params}
        self._publish(Message(channel, ts, content, audience, ephemeral), "new")

    def _publish(self, message: Message, kind: str) -> None:
        self.messages[(message.channel, message.ts)] = message
        self._notify(message.audience, Post(kind, message=message))

    def _notify(self, audience: frozenset[str], post: Post) -> None:
        # People outside the demo (say, the new hire a DM goes to) are shown to everyone, marked.
        shown_to = audience & set(self.people) or frozenset(self.people)
        for user in shown_to:
            self.feeds.setdefault(user, []).append(post)

    def _on_update(self, call: Call) -> None:
        if not call.response.get("ok"):
            return
        key = (str(call.params.get("channel", "")), str(call.params.get("ts", "")))
        existing = self.messages.get(key)
        content = dict(existing.content) if existing else {}
        content.update({k: call.params[k] for k in MESSAGE_FIELDS if k in call.params})
        audience = existing.audience if existing else self.audience_of(key[0])
        self._publish(Message(key[0], key[1], content, audience), "updated")

    def _on_delete(self, call: Call) -> None:
        key = (str(call.params.get("channel", "")), str(call.params.get("ts", "")))
        existing = self.messages.pop(key, None)
        if existing is not None:
            existing.deleted = True
            self._notify(existing.audience, Post("deleted", message=existing))

    def _on_response_url(self, call: Call) -> None:
        token = call.method.rsplit("/", 1)[-1]
        target = self.targets.get(token)
        if target is None:
            return
        params = call.params
        source = self.messages.get(target.message) if target.message else None
        if source is not None and _flag(params.get("delete_original")):
            self.messages.pop((source.channel, source.ts), None)
            source.deleted = True
            self._notify(source.audience, Post("deleted", message=source))
            return
        content = {k: params[k] for k in MESSAGE_FIELDS if k in params}
        if source is not None and _flag(params.get("replace_original")):
            updated = Message(source.channel, source.ts, content, source.audience, source.ephemeral)
            self._publish(updated, "updated")
            return
        in_channel = params.get("response_type") == "in_channel"
        audience = self.audience_of(target.channel) if in_channel else frozenset({target.user})
        ts = f"{time.time():.6f}"
        self._publish(Message(target.channel, ts, content, audience, not in_channel), "new")

    def _on_view_open(self, call: Call) -> None:
        view = call.response.get("view") or {}
        user = user_of_trigger(str(call.params.get("trigger_id", "")))
        if not call.response.get("ok") or not user or not view.get("id"):
            return
        stack = self.modals.setdefault(user, [])
        if call.method == "views.open":
            stack.clear()
        stack.append(str(view["id"]))
        self._notify(frozenset({user}), Post("modal", view_id=str(view["id"])))

    def _on_view_update(self, call: Call) -> None:
        view_id = str((call.response.get("view") or {}).get("id", ""))
        for user, stack in self.modals.items():
            if view_id in stack:
                self._notify(frozenset({user}), Post("modal", view_id=view_id))

    # --- what the terminal reads -------------------------------------------------------
    def drain(self, user: str) -> list[Post]:
        with self._lock:
            posts = self.feeds.get(user, [])
            self.feeds[user] = []
            return posts

    def open_modal(self, user: str) -> str | None:
        with self._lock:
            stack = self.modals.get(user) or []
            return stack[-1] if stack else None

    def view(self, view_id: str) -> dict[str, Any] | None:
        return self.api.get_view(view_id)

    def replace_view(self, view_id: str, view: dict[str, Any]) -> dict[str, Any]:
        """Slack's side of `response_action: update`: the open modal now shows `view`."""
        stored = {**view, "id": view_id, "hash": uuid.uuid4().hex[:12], "state": {"values": {}}}
        self.api.put_view(stored)
        return stored

    def push_view(self, user: str, view: dict[str, Any]) -> str:
        view_id = "V" + uuid.uuid4().hex[:10].upper()
        stored = {**view, "id": view_id, "hash": uuid.uuid4().hex[:12], "state": {"values": {}}}
        self.api.put_view(stored)
        with self._lock:
            self.modals.setdefault(user, []).append(view_id)
        return view_id

    def close_modal(self, user: str, *, all_of_them: bool = False) -> None:
        with self._lock:
            stack = self.modals.get(user) or []
            if all_of_them:
                stack.clear()
            elif stack:
                stack.pop()

    def recent(self, user: str, count: int = 5) -> list[Message]:
        """The latest messages this person can see, oldest first."""
        with self._lock:
            mine = [m for m in self.messages.values() if user in m.audience and not m.deleted]
        return sorted(mine, key=lambda m: float(m.ts))[-count:]


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() == "true"
