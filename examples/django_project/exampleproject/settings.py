"""Settings of the smallest Django project that uses hotcfg."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# An example only: a real project reads its secret from the environment.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = ["hotcfg.integrations.django"]
MIDDLEWARE = ["hotcfg.integrations.django.middleware.HotcfgMiddleware"]
ROOT_URLCONF = "exampleproject.urls"
WSGI_APPLICATION = "exampleproject.wsgi.application"
DATABASES = {}
USE_TZ = True

# Any HOTCFG_* setting, without the prefix. Under Gunicorn the master reads
# its environment, so both must name the same file.
HOTCFG = {"SOURCE": os.environ.get("HOTCFG_SOURCE", BASE_DIR / "config.yaml")}
