"""Tests of `roleup demo`: its Slack stand-in, renderer, payloads and whole sessions."""
