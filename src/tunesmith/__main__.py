"""``python -m tunesmith``: the command line."""

from .cli import main

raise SystemExit(main())
