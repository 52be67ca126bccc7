"""The domain: IAM lifecycle, sync, approvals, invites, audit. Knows nothing of Slack."""
