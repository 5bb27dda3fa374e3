"""WSGI entry point: ``gunicorn app:app``."""

from authsvc import create_app

app = create_app()
