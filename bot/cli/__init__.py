"""The `sabot` command and its subcommands."""
