"""The `agentmon` command's subcommands."""
