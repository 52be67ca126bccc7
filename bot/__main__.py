"""Entry point for `python -m bot`, the same as the `roleup` script."""

from bot.cli_entry import main

raise SystemExit(main())
