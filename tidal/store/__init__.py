"""The metadata store: schema, migrations, and repositories for tracking and the registry."""
