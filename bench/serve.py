"""Run one benchmarked app under gunicorn with the service's own settings.

    python -m bench.serve {service,floor,storage,storage-core} --port P --workers W --ready-dir D [--warm]

The settings are those of ``consent-service serve`` (consent_service/cli.py): sync workers,
``workers`` of them, access log to stdout (the benchmark discards it), gunicorn's defaults for
the rest. All apps get exactly the same, so floors and service are comparable.

Each worker writes ``D/ready-<pid>`` once it can answer. ``--warm`` first compiles every
community's rules in each worker (the steady state of a long-running worker, reached here
without sending a request per community): the figures are for decisions, not for start-up.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from consent_service.log_hygiene import ACCESS_LOG_FORMAT


def warm(app: Any) -> int:
    """Compile every community's active rules into the worker's rule cache; returns communities."""
    from sqlalchemy import select

    from consent_service.container import EXTENSION
    from consent_service.storage.db import read_snapshot
    from consent_service.storage.models import Community

    services = app.extensions[EXTENSION]
    with read_snapshot(services.sessions) as session:
        versions = session.execute(select(Community.id, Community.policy_version)).all()
        for community, version in versions:
            services.rules.compiled(session, community, version)
    return len(versions)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.serve")
    parser.add_argument("kind", choices=["service", "floor", "storage", "storage-core"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ready-dir", required=True)
    parser.add_argument("--warm", action="store_true")
    args = parser.parse_args(argv)
    ready = Path(args.ready_dir)

    def post_worker_init(worker: Any) -> None:
        if args.warm and args.kind == "service":
            warm(worker.wsgi)
        (ready / f"ready-{worker.pid}").write_text(str(worker.pid))

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            # as consent-service serve:
            self.cfg.set("bind", f"127.0.0.1:{args.port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("accesslog", "-")
            self.cfg.set("access_log_format", ACCESS_LOG_FORMAT)
            # the benchmark's own hook:
            self.cfg.set("post_worker_init", post_worker_init)

        def load(self) -> Any:
            from bench.apps import make

            return make(args.kind)

    Server().run()


if __name__ == "__main__":
    main()
