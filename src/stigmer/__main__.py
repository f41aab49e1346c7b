"""``python -m stigmer`` runs the CLI."""

from stigmer.cli.main import main

main()
