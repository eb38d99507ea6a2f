"""Local object stores for the ingest tests, on 127.0.0.1, and a proxy in front of them.

The proxy forwards every request to the store and can break the download of chosen
objects (drop the connection halfway through the body) or run a hook when one is
downloaded (to change it while it is read). It also counts downloads per path.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}
ROOT = Path(__file__).resolve().parents[1]
AZURITE = ROOT / ".tools/node_modules/.bin/azurite-blob"
# Azurite's documented development account (public, the same for everyone)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


class FaultProxy:
    """An HTTP proxy to `upstream` ("host:port") that can fail or hook chosen downloads."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.break_always: set[str] = set()  # path parts whose downloads always break
        self.break_once: set[str] = set()  # ... break on the first download only
        self.on_download: dict[str, Callable[[], None]] = {}  # hook before answering
        self.downloads: Counter[str] = Counter()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_any(self) -> None:
                proxy.forward(self)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = do_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def forward(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        path = request.path.split("?", 1)[0]
        is_download = request.command == "GET" and (
            "Range" in headers or "x-ms-range" in {k.lower() for k in headers}
        )
        if is_download:
            self.downloads[path] += 1
            for part, hook in self.on_download.items():
                if part in path:
                    hook()
        conn = http.client.HTTPConnection(self.upstream, timeout=30)
        conn.request(request.command, request.path, body=body, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        conn.close()
        broken = is_download and any(p in path for p in self.break_always | self.break_once)
        self.break_once = (
            {p for p in self.break_once if p not in path} if broken else (self.break_once)
        )
        request.send_response(answer.status, answer.reason)
        for key, value in answer.getheaders():
            if key.lower() not in HOP_BY_HOP | {"content-length"}:
                request.send_header(key, value)
        request.send_header("Content-Length", str(len(data)))
        request.send_header("Connection", "close")
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(data[: len(data) // 2] if broken else data)
        request.close_connection = True


def no_cloud_metadata(monkeypatch) -> None:
    """Keep every credential chain off the clouds' metadata addresses."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    for name in list(os.environ):
        if name.startswith(("AWS_", "AZURE_", "GOOGLE_")) and name != "AWS_EC2_METADATA_DISABLED":
            monkeypatch.delenv(name)


def start_moto(monkeypatch, tmp_path: Path) -> tuple[Any, int]:
    """A fresh moto S3 server on a free port, and test credentials in the environment (no
    cloud metadata, no ~/.aws); the caller points AWS_ENDPOINT_URL_S3 at it or a proxy."""
    import requests
    from moto.server import ThreadedMotoServer

    no_cloud_metadata(monkeypatch)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    requests.post(f"http://127.0.0.1:{port}/moto-api/reset", timeout=10)  # moto's state is global
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    return server, port


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def azurite_command() -> str | None:
    """The project-local Azurite (`make azurite`), else one on PATH."""
    if AZURITE.exists():
        return str(AZURITE)
    return shutil.which("azurite-blob")


def start_azurite(workdir: Path) -> tuple[subprocess.Popen, int]:
    """Azurite's blob service on a free port, keeping its files in `workdir`."""
    command = azurite_command()
    assert command, "azurite is not installed: make azurite"
    port = free_port()
    process = subprocess.Popen(
        [command, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(workdir)]
        + ["--silent", "--skipApiVersionCheck", "--loose"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port)
    return process, port


def azurite_connection_string(endpoint: str, key: str = AZURITE_KEY) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={key};"
        f"BlobEndpoint=http://{endpoint}/{AZURITE_ACCOUNT};"
    )
