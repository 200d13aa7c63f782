"""The `controlplane` command (Typer). Commands only translate; the work is in the domains."""
