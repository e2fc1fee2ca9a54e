"""`llamarada serve | worker | batch submit | finetune prepare | models create`: the CLI."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from app.api.protocol import GuardedHttpToolsProtocol
from app.core.config import ConfigError, Settings, load_settings
from app.core.logging import configure_logging, logging_config

logger = logging.getLogger("app.cli")

LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARDS = ("0.0.0.0", "::", "")


def allowed_hosts(settings: Settings, host: str) -> list[str] | None:
    """The Host allowlist with the address `serve` binds added, or None to keep the setting's.

    An operator's own LLAMARADA_ALLOWED_HOSTS is kept as it is; a wildcard bind adds nothing
    (which names reach it is unknown here: the log line says to set the variable).
    """
    if "allowed_hosts" in settings.model_fields_set or host in WILDCARDS:
        return None
    name = f"[{host}]" if ":" in host else host.lower()
    return None if name in settings.allowed_hosts else [*settings.allowed_hosts, name]


def server_options(settings: Settings, host: str, port: int, workers: int) -> dict[str, Any]:
    """What uvicorn runs with: time and size bounds on every connection."""
    server = settings.server
    return {
        "host": host,
        "port": port,
        "workers": workers,
        "log_config": logging_config(settings.log_level),
        "access_log": False,  # the app logs each request itself, without its headers
        # The app's drain (app.api.drain) has waited for the requests in flight already.
        "timeout_graceful_shutdown": 2,
        "timeout_keep_alive": server.keep_alive_timeout,
        "limit_concurrency": server.max_connections,
        # Read by GuardedHttpToolsProtocol too: httptools itself has no header limit.
        "h11_max_incomplete_event_size": server.max_header_bytes,
        "http": partial(
            GuardedHttpToolsProtocol,
            header_timeout=server.header_timeout,
            body_timeout=server.body_timeout,
        ),
        "server_header": False,
    }


def _configured() -> Settings | None:
    """The settings with logging set up, or None once it is said which variable is wrong."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"llamarada: {exc}", file=sys.stderr)
        return None
    configure_logging(settings.log_level)
    return settings


def serve(args: argparse.Namespace) -> int:
    """Run the API under uvicorn."""
    import uvicorn

    settings = _configured()
    if settings is None:
        return 2
    host = args.host or ("0.0.0.0" if settings.auth_enabled else "127.0.0.1")
    if not settings.auth_enabled and args.host is None:
        logger.info(
            "LLAMARADA_API_KEYS is not set, so the server listens on 127.0.0.1 only: "
            "set API keys, or --host, to serve other machines",
            extra={"host": host},
        )
    elif not settings.auth_enabled and host not in LOOPBACK:
        logger.warning(
            "LLAMARADA_API_KEYS is not set and the server listens beyond this machine: "
            "anyone who can reach it can use it",
            extra={"host": host},
        )
    hosts = allowed_hosts(settings, host)
    if hosts is not None:  # the workers read their settings from the environment
        os.environ["LLAMARADA_ALLOWED_HOSTS"] = ",".join(hosts)
    elif host in WILDCARDS and "*" not in settings.allowed_hosts:
        logger.warning(
            "only these Host headers are answered; set LLAMARADA_ALLOWED_HOSTS to the names "
            "clients use to reach this server",
            extra={"allowed_hosts": settings.allowed_hosts},
        )
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its metrics here and /metrics adds them up.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="llamarada-metrics-")
    options = server_options(settings, host, args.port, args.workers)
    uvicorn.run("app.main:app_from_env", factory=True, **options)
    return 0


def worker(args: argparse.Namespace) -> int:
    """Run a batch worker: items from the Redis queue, /metrics on its own port."""
    from app.batch.build import batch_redis_url

    settings = _configured()
    if settings is None:
        return 2
    if batch_redis_url(settings) is None:
        print(
            "llamarada worker: set LLAMARADA_REDIS_URL; without Redis the API runs batch jobs "
            "itself and no worker is needed",
            file=sys.stderr,
        )
        return 2
    from app.batch.worker import run_worker

    concurrency = args.concurrency or settings.batch.worker_concurrency
    asyncio.run(
        run_worker(
            settings,
            concurrency=concurrency,
            metrics_port=args.metrics_port,
            metrics_host=args.metrics_host,
        )
    )
    return 0


def batch_submit(args: argparse.Namespace) -> int:
    """Send a JSONL file as a batch job; with --wait, follow it and save its results."""
    from app.batch.client import Submission, SubmitError, download, http_client, submit, wait

    sub = Submission(
        url=args.url.rstrip("/"),
        path=args.file,
        model=args.model or "",
        api_key=args.api_key,
        interval=args.interval,
    )
    try:
        with http_client(sub) as client:
            job = submit(sub, client)
            print(job["id"])
            if not args.wait:
                return 0
            job = wait(sub, client, job["id"], sys.stderr)
            target = args.output or args.file.with_suffix(".results.jsonl")
            lines = download(sub, client, job["id"], target)
    except (SubmitError, OSError, httpx.HTTPError) as exc:
        print(f"llamarada batch: {exc}", file=sys.stderr)
        return 1
    counts = job["counts"]
    print(
        f"job {job['id']} {job['status']}: {counts['succeeded']} succeeded, "
        f"{counts['failed']} failed, {counts['cancelled']} cancelled; "
        f"{lines} results in {target}",
        file=sys.stderr,
    )
    return 0 if job["status"] == "completed" else 1


def finetune_prepare(args: argparse.Namespace) -> int:
    """Turn (prompt, response) pairs into training JSONL."""
    from app.finetune import FinetuneError, run_prepare

    try:
        report = run_prepare(
            args.input,
            args.output,
            template=args.template,
            validation=args.validation,
            seed=args.seed,
            system=args.system,
            modelfile=args.modelfile,
            strict=args.strict,
        )
    except (FinetuneError, OSError) as exc:
        print(f"llamarada finetune: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


def models_create(args: argparse.Namespace) -> int:
    """Create an Ollama model from a Modelfile on the configured Ollama servers."""
    from app.bootstrap import BootstrapError, create_model_from_file
    from app.llm.modelfile import ModelfileError

    try:
        create_model_from_file(load_settings().ollama_urls, args.name, args.file)
    except (BootstrapError, ModelfileError, ConfigError) as exc:
        print(f"llamarada models: {exc}", file=sys.stderr)
        return 1
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

    work = commands.add_parser("worker", help="run a batch worker (needs LLAMARADA_REDIS_URL)")
    work.add_argument("--concurrency", type=int, help="items at once (LLAMARADA_BATCH__...)")
    work.add_argument("--metrics-port", type=int, default=9100, help="/metrics port; 0: off")
    work.add_argument("--metrics-host", default="0.0.0.0", help="/metrics address")
    work.set_defaults(handler=worker)

    batch = commands.add_parser("batch", help="batch jobs on a running server")
    batch_commands = batch.add_subparsers(dest="batch_command", required=True)
    send = batch_commands.add_parser("submit", help="send a JSONL file as a job")
    send.add_argument("file", type=Path, help="one JSON object per line: a prompt or messages")
    send.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('PORT', '8000')}")
    send.add_argument("--model", help="for lines that name none (default: the server's)")
    send.add_argument("--wait", action="store_true", help="show progress, then save results")
    send.add_argument("--output", "-o", type=Path, help="default: FILE.results.jsonl")
    send.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    send.add_argument("--api-key", default=os.environ.get("LLAMARADA_API_KEY"))
    send.set_defaults(handler=batch_submit)

    finetune = commands.add_parser("finetune", help="prepare fine-tuning data")
    finetune_commands = finetune.add_subparsers(dest="finetune_command", required=True)
    prepare = finetune_commands.add_parser(
        "prepare", help="CSV (prompt,response) or JSONL -> training JSONL"
    )
    prepare.add_argument("input", type=Path)
    prepare.add_argument("--output", "-o", type=Path, required=True)
    prepare.add_argument("--template", choices=["llama3", "chatml"], default="llama3")
    prepare.add_argument("--validation", type=float, default=0.0, help="share held out, 0-0.5")
    prepare.add_argument("--seed", type=int, default=42)
    prepare.add_argument("--system", help="system prompt for rows without one")
    prepare.add_argument("--modelfile", type=Path, help="take num_ctx and SYSTEM from it")
    prepare.add_argument("--strict", action="store_true", help="fail on any bad row")
    prepare.set_defaults(handler=finetune_prepare)

    models = commands.add_parser("models", help="custom models from Modelfiles")
    models_commands = models.add_subparsers(dest="models_command", required=True)
    create = models_commands.add_parser("create", help="create a model on the Ollama servers")
    create.add_argument("name")
    create.add_argument("--file", "-f", type=Path, required=True, help="the Modelfile")
    create.set_defaults(handler=models_create)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `llamarada` console script."""
    args = build_parser().parse_args(argv)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
