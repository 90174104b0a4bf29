"""``python -m codedance``: the same as the ``codedance`` command."""

from codedance.core.cli import main

main()
