"""Run the simulator in the foreground (``gpuops-sim serve``; ``gpuops-sim start`` runs this detached)."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import secrets
import socket
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn

from .app import create_app
from .catalog import load_catalog
from .engine import Engine
from .errors import SimConfigError
from .faults import load_faults_file
from .local import check_host, check_state_dir, default_state_dir  # noqa: F401  (re-exported, used below)


def load_keys(state_dir: Path) -> dict:
    p = state_dir / "keys.json"
    if p.exists():
        try:
            keys = json.loads(p.read_text())
            if {"runpod", "vast", "admin"} <= set(keys):
                return keys
        except (OSError, ValueError):
            pass
    keys = {"runpod": "sim_rp_" + secrets.token_hex(16), "vast": "sim_vast_" + secrets.token_hex(16),
            "admin": "sim_admin_" + secrets.token_hex(16)}
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(keys, fh)
    return keys


def bind(host: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
    except OSError as e:
        s.close()
        if e.errno == errno.EADDRINUSE:
            raise SimConfigError(f"port {port} on {host} is already in use (choose another with --port, or 0 "
                                 "for a free one)") from None
        raise SimConfigError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    s.listen(512)
    s.setblocking(False)
    return s


def serve(state_dir: Path, host: str = "127.0.0.1", port: int = 0, catalog: str | None = None,
          faults: str | None = None, boot_seconds: float | None = None) -> int:
    state_dir = check_state_dir(state_dir)
    check_host(host)
    cat = load_catalog(catalog)
    if boot_seconds is not None:
        cat.settings["boot_seconds"] = boot_seconds
    initial_faults = load_faults_file(faults) if faults else []
    keys = load_keys(state_dir)
    sock = bind(host, port)
    port = sock.getsockname()[1]
    url = f"http://{host}:{port}"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)

    engine = Engine(cat, state_dir)
    engine.api_urls = {"runpod": f"{url}/v2", "vast": url}
    engine.faults.add(initial_faults)
    server_holder: dict = {}

    def request_exit():
        srv = server_holder.get("server")
        if srv is not None:
            srv.should_exit = True

    @asynccontextmanager
    async def lifespan(app):
        await engine.begin()
        info = {"pid": os.getpid(), "url": url, "host": host, "port": port, "state_dir": str(state_dir),
                "token": engine.token, "started_at": time.time(), "admin_token": keys["admin"],
                "runpod_api_key": keys["runpod"], "vast_api_key": keys["vast"],
                "ssh_user": engine.nodes.user}
        p = state_dir / "server.json"
        fd = os.open(p.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(info, fh)
        os.replace(p.with_suffix(".tmp"), p)
        try:
            yield
        finally:
            if not engine._closing:
                await engine.shutdown()
            try:
                p.unlink()
            except OSError:
                pass

    app = create_app(engine, {"runpod": keys["runpod"], "vast": keys["vast"]}, keys["admin"],
                     on_shutdown=request_exit)
    app.router.lifespan_context = lifespan
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False,
                            timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    server_holder["server"] = server
    asyncio.run(server.serve(sockets=[sock]))
    return 0
