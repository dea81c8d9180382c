"""`python -m detector`: the `detector` command."""

from detector.cli import main

raise SystemExit(main())
