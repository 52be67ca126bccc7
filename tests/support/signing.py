"""Slack's request signing for tests: the one copy lives in bot.demo.signing."""

from bot.demo.signing import command_body, payload_body, signature, signed_headers

__all__ = ["command_body", "payload_body", "signature", "signed_headers"]
