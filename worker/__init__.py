"""Runtime: settings, logging, broker and database adapters, the consumer loop and the CLI."""
