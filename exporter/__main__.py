"""`python -m exporter` is the `boxoffice` command."""

from exporter.cli import main

main()
