"""``python -m divlab.cli``: the same as the ``divlab`` command."""

from divlab.cli import main

main()
