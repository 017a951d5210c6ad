"""python3 -m registry: serve the API on 0.0.0.0:8080 (REGISTRY_PORT)."""
import logging
import os

import uvicorn

from registry.app import create_app

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
uvicorn.run(create_app(), host="0.0.0.0", port=int(os.environ.get("REGISTRY_PORT", "8080")), log_level="warning")
