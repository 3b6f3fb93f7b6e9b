"""`python -m bot` is the same as the `watchfloor` command."""

from bot.cli import main

raise SystemExit(main())
