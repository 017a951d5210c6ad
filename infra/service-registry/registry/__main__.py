"""python3 -m registry: serve the API on 0.0.0.0:8080 (REGISTRY_PORT)."""
import logging
import os

from registry.app import create_app
from servicekit import serving

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
serving.serve(create_app(), "registry.app:create_app", int(os.environ.get("REGISTRY_PORT", "8080")), workers=1)
