"""The work after an ack never runs in the listener's (the request's) thread: the served app sends
the ack when the listener returns (bot.app), so an inline step would hold the ack."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

import pytest
from slack_bolt import App

from bot.slack.commands import command_listener, read_only_command
from bot.slack.errors import NO_POOL, run_after_ack


class Queued(Executor):
    """An executor that only queues: what ran inline would show in `done`, not in `queued`."""

    def __init__(self) -> None:
        self.queued: list[Callable[[], Any]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.queued.append(lambda: fn(*args, **kwargs))
        return Future()


def test_the_work_is_queued_not_run_and_its_failure_replied_when_it_runs():
    pool, done, replies = Queued(), [], []

    def work() -> None:
        done.append("ran")
        raise ValueError("boom")

    run_after_ack(pool, replies.append, "the test", work)
    assert done == [] and replies == []
    pool.queued[0]()
    assert done == ["ran"] and "Something went wrong on our side" in replies[0]


def test_without_a_pool_nothing_runs_inline():
    done: list[str] = []
    with pytest.raises(RuntimeError, match="needs a pool"):
        run_after_ack(None, lambda text: None, "the test", lambda: done.append("ran"))
    assert done == [] and "create_app" in NO_POOL


@pytest.mark.parametrize("register", [command_listener, read_only_command])
def test_a_command_without_a_pool_is_refused_when_it_is_registered(register):
    app = App(signing_secret="s", token="xoxb-unit", token_verification_enabled=False)
    with pytest.raises(RuntimeError, match="needs a pool"):
        register(app, "/x", str, "/x", lambda *args: {}, pool=None)
