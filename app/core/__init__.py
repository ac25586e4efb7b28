"""Settings, database engine and migrations of the fedheads service."""
