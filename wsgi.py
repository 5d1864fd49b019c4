"""The WSGI entry point: `gunicorn wsgi:app`."""

from adapters.runtime import settle_service_process
from api import create_app

app = create_app()
settle_service_process()
