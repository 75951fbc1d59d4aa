"""The Slack side: the Bolt app, its listeners and views, and the Web API clients."""
