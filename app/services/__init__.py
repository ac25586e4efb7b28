"""Service logic behind the routes; functions take a keyword-only ``db_session``."""
