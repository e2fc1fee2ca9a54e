"""`llamarada serve | ...`: the command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Sequence

from app.config import ConfigError, load_settings
from app.core.logging import configure_logging, logging_config

logger = logging.getLogger("app.cli")


def serve(args: argparse.Namespace) -> int:
    """Run the API under uvicorn."""
    import uvicorn

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"llamarada: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    host = args.host or ("0.0.0.0" if settings.api_keys else "127.0.0.1")
    if settings.api_keys is None and host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning(
            "LLAMARADA_API_KEYS is not set and the server listens beyond this machine: "
            "anyone who can reach it can use it",
            extra={"host": host},
        )
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its metrics here and /metrics adds them up.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="llamarada-metrics-")
    uvicorn.run(
        "app.main:app_from_env",
        factory=True,
        host=host,
        port=args.port,
        workers=args.workers,
        log_config=logging_config(settings.log_level),
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The `llamarada` argument parser."""
    parser = argparse.ArgumentParser(prog="llamarada", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="run the HTTP API")
    run.add_argument("--host", help="default 127.0.0.1, or 0.0.0.0 when API keys are set")
    run.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    run.add_argument("--workers", type=int, default=1)
    run.set_defaults(handler=serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `llamarada` console script."""
    args = build_parser().parse_args(argv)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
