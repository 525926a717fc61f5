"""ASGI entry point: ``gunicorn -k asgi -c gunicorn_conf.py exampleproject.asgi``."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exampleproject.settings")
application = get_asgi_application()
