"""Slack-only helpers shared by every handler: escaping, Block Kit builders, argument parsing,
error messages, the retry guard and the log guards. Nothing here talks to AWS or the store,
except the retry guard, which records delivery keys."""
