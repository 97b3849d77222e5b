"""`python -m workers.inference [--host H] [--port P]`: run one inference worker (uvicorn, one process)."""

import argparse
import logging

import uvicorn

from app.core.config import settings
from app.core.logs import configure_logging
from workers.inference.server import create_worker_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    logging.getLogger(__name__).info("inference worker on %s:%s", args.host, args.port)
    uvicorn.run(create_worker_app(settings), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
