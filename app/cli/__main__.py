"""`python -m app.cli …`: the `labelgate` command."""

from app.cli import main

main()
