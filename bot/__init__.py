"""Watchfloor: polls news sources, flags items about watch topics, alerts Slack, Teams or the console."""

__version__ = "0.1.0"
