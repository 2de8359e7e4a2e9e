"""``python -m training.cli``: the ``nkpredict`` command line."""

from training.cli import main

main()
