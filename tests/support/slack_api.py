"""The Slack Web API stand-in for tests: the one copy lives in bot.demo.fake_slack."""

from bot.demo.fake_slack import Call, FakeSlackApi, SlackUser

__all__ = ["Call", "FakeSlackApi", "SlackUser"]
