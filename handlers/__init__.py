"""Slack listeners (Bolt for Python): they parse slash commands, buttons and
modal submissions into service calls and render the results. Each listener
calls one function of `bot.service`; no business logic lives here."""
