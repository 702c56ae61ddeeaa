"""`python -m metastore.cli …`: the command line."""

from metastore.cli import main

main()
