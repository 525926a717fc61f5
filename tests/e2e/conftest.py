"""The Gunicorn service fixture, for the e2e modules besides its own."""

from tests.e2e.test_gunicorn import start_service

__all__ = ["start_service"]
