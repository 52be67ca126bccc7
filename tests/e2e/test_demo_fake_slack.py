"""The Slack stand-in answers like Slack for what the app and the demo rely on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient

from bot.demo.fake_slack import FakeSlackApi


@pytest.fixture
def api() -> Iterator[FakeSlackApi]:
    fake = FakeSlackApi().start()
    yield fake
    fake.stop()


def test_views_keep_their_id_across_updates(api: FakeSlackApi) -> None:
    client = WebClient(token="xoxb-x", base_url=api.url)
    opened = client.views_open(trigger_id="1.U1.2", view={"type": "modal", "blocks": []})
    view_id = opened["view"]["id"]
    updated = client.views_update(
        view_id=view_id, view={"type": "modal", "callback_id": "next", "blocks": []}
    )
    assert updated["view"]["id"] == view_id
    assert updated["view"]["hash"] != opened["view"]["hash"]
    stored = api.get_view(view_id)
    assert stored is not None and stored["callback_id"] == "next"


def test_messages_keep_their_ts_and_update_in_place(api: FakeSlackApi) -> None:
    client = WebClient(token="xoxb-x", base_url=api.url)
    posted = client.chat_postMessage(channel="C1", text="first")
    client.chat_update(channel="C1", ts=posted["ts"], text="second")
    assert api.messages[("C1", posted["ts"])]["text"] == "second"
    assert [c.method for c in api.calls] == ["chat.postMessage", "chat.update"]
    assert api.calls[1].response["ts"] == posted["ts"]


def test_users_info_reads_the_directory(api: FakeSlackApi) -> None:
    api.add_user("UDEMOMAYA", "maya", "Maya Manager")
    client = WebClient(token="xoxb-x", base_url=api.url)
    assert client.users_info(user="UDEMOMAYA")["user"]["real_name"] == "Maya Manager"
    assert client.users_info(user="UOTHER")["user"]["name"] == "uother"


def test_response_url_posts_are_recorded_and_heard(api: FakeSlackApi) -> None:
    heard: list[str] = []
    api.subscribe(lambda call: heard.append(call.method))
    WebhookClient(api.response_url_base + "abc").send(text="done", replace_original=True)
    (call,) = api.calls_to("response_url:/respond/abc")
    assert call.params["text"] == "done"
    assert call.params["replace_original"] is True
    assert heard == ["response_url:/respond/abc"]


def test_a_failure_can_be_forced(api: FakeSlackApi) -> None:
    api.fail("chat.postMessage", "channel_not_found")
    client = WebClient(token="xoxb-x", base_url=api.url)
    with pytest.raises(Exception, match="channel_not_found"):
        client.chat_postMessage(channel="C404", text="x")
