"""`metastore ui`: the server app with the web UI, on this machine only.

(Beside the UI package, not inside it: the app mounts the UI, so the UI must not import
the app back.)

It listens on 127.0.0.1 with no authentication: only local processes can reach it, the
same trust as reading the store's files directly. For a team, run `metastore server`
(tokens) instead.
"""

from __future__ import annotations

import socket
import threading
import webbrowser

from fastapi import FastAPI

from metastore.errors import MetastoreError

HOST = "127.0.0.1"


def build_app(store) -> FastAPI:
    """The metastore server app with the UI and no authentication (loopback only)."""
    from metastore.server.app import create_app

    return create_app(store, auth=False, ui=True)


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as e:
            raise MetastoreError(
                f"port {port} on {host} is in use ({e.strerror})",
                hint="pick another with --port, e.g. --port 5001",
            ) from e


def serve_ui(store, port: int = 5000, open_browser: bool = True) -> None:
    """Serve the UI for `store` at http://127.0.0.1:PORT until interrupted."""
    import uvicorn

    check_port_free(HOST, port)
    url = f"http://{HOST}:{port}/"
    app = build_app(store)
    server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=port, log_level="warning"))
    if open_browser:
        def when_up():
            for _ in range(100):
                if server.started:
                    webbrowser.open(url)
                    return
                threading.Event().wait(0.1)

        threading.Thread(target=when_up, daemon=True).start()
    print(f"metastore UI for {store.url} at {url} (Ctrl+C stops it)", flush=True)
    server.run()
