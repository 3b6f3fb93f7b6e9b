"""News sources: fetching feeds over HTTP (fetch), parsing them (feeds), per-source health (health), and
one poll cycle's source work (poll)."""
