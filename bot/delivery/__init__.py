"""Delivery of outbox alerts to their destinations."""
