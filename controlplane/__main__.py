"""`python -m controlplane` runs the CLI, as the `controlplane` console script does."""

from controlplane.cli.main import main

main()
