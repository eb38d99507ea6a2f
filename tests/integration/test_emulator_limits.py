"""The emulator under hostile clients: bad chunk sizes, huge bodies, many at once."""

from __future__ import annotations

import base64
import concurrent.futures
import os
import re
import signal
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import requests

from loader.emulator import http_core
from loader.emulator.server import MAX_CONCURRENT_REQUESTS, EmulatorConfig, running_emulator
from tests.integration.test_emulator import batch, start_cli

AUTH = "Authorization: Basic " + base64.b64encode(b"key:s3cr3t-value").decode()


def exchange(port: int, head: str, body: bytes = b"", *, timeout: float = 10) -> bytes:
    """Send a raw request, close the sending side, and return everything answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.encode() + body)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while data := sock.recv(65536):
            answer += data
    return answer


def chunked_head(port: int) -> str:
    return (
        f"POST /v2/bulkevents HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{AUTH}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )


def test_a_negative_or_unreadable_chunk_size_is_a_400():
    body = orjson.dumps([batch("chunk-minus-one")])
    config = EmulatorConfig(api_key="key", api_secret="s3cr3t-value")
    with running_emulator(config) as emu:
        for size in (b"-1", b"zz", b"", b"1" * 17):
            answer = exchange(emu.port, chunked_head(emu.port), size + b"\r\n" + body + b"\r\n")
            head, _, payload = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n"), (size, answer[:200])
            assert b"Connection: close" in head
            message = f"bad chunk size {size.decode()!r} in a chunked body"
            assert orjson.loads(payload) == {
                "errors": [{"code": "BAD_REQUEST", "message": message}]
            }
        assert not emu.accepted_source_request_ids()
        assert [r.status for r in emu.requests] == [400, 400, 400, 400]


def test_a_body_too_large_is_drained_not_held_and_refused_413():
    config = EmulatorConfig(api_key="key", api_secret="s3cr3t-value")
    with running_emulator(config) as emu, requests.Session() as s:
        s.auth = ("key", "s3cr3t-value")
        big = b" " * (3 * 1024 * 1024)

        def chunks():
            for start in range(0, len(big), 1 << 20):
                yield big[start : start + (1 << 20)]

        for data in (big, chunks()):
            response = s.post(emu.base_url + "/bulkevents", data=data, timeout=10)
            assert response.status_code == 413
            assert response.json()["errors"][0]["message"] == (
                f"request body is {len(big)} bytes; the limit is 262144 bytes (256 KB)"
            )
        # the connection stays usable: the body was read to its end
        ok = s.post(emu.base_url + "/bulkevents", data=orjson.dumps([batch("after")]), timeout=10)
        assert ok.status_code == 202
        assert [r.body_bytes for r in emu.requests[:2]] == [len(big), len(big)]


def test_requests_beyond_the_concurrency_cap_get_503(monkeypatch):
    monkeypatch.setattr(http_core, "SLOT_WAIT_S", 0.5)
    config = EmulatorConfig(api_key="key", api_secret="s3cr3t-value")
    with running_emulator(config) as emu:
        stalled = []
        try:
            for _ in range(MAX_CONCURRENT_REQUESTS):  # each holds a slot, its body unfinished
                sock = socket.create_connection(("127.0.0.1", emu.port), timeout=10)
                sock.sendall(
                    f"POST /v2/bulkevents HTTP/1.1\r\nHost: x\r\n{AUTH}\r\n"
                    "Content-Length: 1000\r\n\r\n{".encode()
                )
                stalled.append(sock)
            time.sleep(0.3)
            started = time.monotonic()
            response = requests.post(
                emu.base_url + "/bulkevents",
                data=orjson.dumps([batch("one-too-many")]),
                auth=("key", "s3cr3t-value"),
                timeout=10,
            )
            assert response.status_code == 503
            assert time.monotonic() - started < 5
            assert response.headers["Retry-After"] == "1"
            assert response.json()["errors"][0]["message"] == (
                f"the emulator is serving {MAX_CONCURRENT_REQUESTS} requests already; "
                "try again later"
            )
        finally:
            for sock in stalled:
                sock.close()
        # slots come back once those requests end
        deadline = time.monotonic() + 5
        while True:
            response = requests.post(
                emu.base_url + "/bulkevents",
                data=orjson.dumps([batch("later")]),
                auth=("key", "s3cr3t-value"),
                timeout=10,
            )
            if response.status_code == 202 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert response.status_code == 202


def test_twenty_concurrent_60_mb_bodies_stay_in_bounded_memory(tmp_path):
    proc, url, _ = start_cli(tmp_path, "--port", "0")
    port = urlsplit(url).port
    block = b" " * (1 << 20)

    def send(n: int) -> bytes:
        try:
            return send_body(n)
        except OSError:  # a 503 on a busy machine closes the connection mid-body
            return b"HTTP/1.1 503 closed"

    def send_body(n: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            if n % 2:
                sock.sendall(chunked_head(port).encode())
                for _ in range(60):
                    sock.sendall(b"100000\r\n" + block + b"\r\n")
                sock.sendall(b"0\r\n\r\n")
            else:
                sock.sendall(
                    f"POST /v2/bulkevents HTTP/1.1\r\nHost: x\r\nContent-Length: {60 << 20}"
                    "\r\n\r\n".encode()
                )
                for _ in range(60):
                    sock.sendall(block)
            return sock.recv(100)

    try:
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(send, range(20)))
        # the emulator's own peak (VmHWM is its program's, unlike a child's ru_maxrss,
        # which counts pytest's memory from before the exec)
        status_text = Path(f"/proc/{proc.pid}/status").read_text()
        peak_mb = int(re.search(r"VmHWM:\s+(\d+) kB", status_text).group(1)) // 1024
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.stdout.read()
        proc.stderr.read()
        _, status, _ = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # each waits for one of the slots (or, on a slow machine, gets a 503 after waiting),
    # is read to its end without being held, and refused
    statuses = [answer.split(b" ")[1] for answer in answers]
    assert set(statuses) <= {b"413", b"503"}, answers
    assert statuses.count(b"413") >= MAX_CONCURRENT_REQUESTS, answers
    assert peak_mb < 250, f"peak RSS {peak_mb} MB"
