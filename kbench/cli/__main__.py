"""``python -m kbench.cli``: the ``kbench`` command."""

from kbench.cli import main

main()
