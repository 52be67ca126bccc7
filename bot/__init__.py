"""RoleUp for AWS: onboard and offboard AWS IAM users from Slack."""
