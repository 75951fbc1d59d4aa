"""A request's way to a decision: filing, validation, quota, approvals and its messages."""
