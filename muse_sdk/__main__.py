"""``python -m muse_sdk`` runs the ``muse`` command line."""

from muse_sdk.cli import main

raise SystemExit(main())
