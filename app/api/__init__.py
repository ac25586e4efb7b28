"""The REST API (``/api/v1``): thin routes over :mod:`app.services`."""
