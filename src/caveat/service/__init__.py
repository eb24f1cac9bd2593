"""The HTTP service: ``create_app(ServiceSettings.from_env(run_dir=...))``, served by ``caveat serve``."""

from caveat.service.app import create_app
from caveat.service.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
