"""``python -m frostgate.cli``: the same command as the ``frostgate`` script."""

from frostgate.cli import main

main()
