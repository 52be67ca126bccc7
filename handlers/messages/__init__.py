"""Message builders (Block Kit for chat messages): pure functions of data, tested without Slack."""
