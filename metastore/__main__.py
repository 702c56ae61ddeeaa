"""`python -m metastore …`: the command line, as the `metastore` script (used where the
script may not be on PATH, e.g. `metastore reproduce` re-running a `metastore run`)."""

from metastore.cli import main

if __name__ == "__main__":
    main()
