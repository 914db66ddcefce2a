"""Command-line interface: `tokenpulse <command>`; one module per command, each with `register()`."""
