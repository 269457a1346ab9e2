"""``python -m pgpulse.cli``: the ``pgpulse`` command without its console script."""

from pgpulse.cli import main

main()
