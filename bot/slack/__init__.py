"""Slack pieces shared by several handler features: escaping, Block Kit builders, argument
parsing, error messages, the retry and log guards, and the surfaces more than one feature shows
(approval messages, the App Home, review blocks, the common modal fields). Handler features
import from here, never from each other."""
