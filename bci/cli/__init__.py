"""The ``bci`` command: one module per subcommand, loaded only when that subcommand runs."""
