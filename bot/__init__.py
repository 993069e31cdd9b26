"""Chat front-ends: Discord, Slack and a local console over the knowledge core."""
