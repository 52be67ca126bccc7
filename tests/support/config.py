"""The secrets every test configures the bot with (test values, never real ones)."""

from __future__ import annotations

TEST_KEY = "kFJ0b0l8q3Yv8mJ8o2cS9h0m1x2Vf3b4n5M6k7L8p9Q="
SIGNING_SECRET = "test-signing-secret-7f3a9c"
BOT_TOKEN = "xoxb-test-bot-token-1234"
