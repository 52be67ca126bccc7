"""Test harness shared by every test: databases, Slack stand-in, signing, servers."""
