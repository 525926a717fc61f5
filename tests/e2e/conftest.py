# The Gunicorn service fixture, for every end-to-end module.
from tests.e2e.test_gunicorn import start_service  # noqa: F401
