"""``python -m reversa`` runs the CLI."""

from .cli.main import main

main()
