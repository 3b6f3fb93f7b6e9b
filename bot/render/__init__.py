"""Rendering: every outward message is built here, once per platform, with its limits and escaping."""
