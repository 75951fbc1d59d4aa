"""The job queue, its handlers, recurring work and Slack event de-duplication."""
