"""``python -m batchjudge`` runs the CLI."""

from batchjudge.cli import main

main()
