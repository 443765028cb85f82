"""`python -m headstart ...` runs the command line, as the `headstart` script does."""

from headstart.cli import main

main()
