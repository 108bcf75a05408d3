"""The REST API (FastAPI), its error shape, and the console's static files."""
