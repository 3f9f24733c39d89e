"""EMULATED ClickHouse server: a minimal ClickHouse HTTP interface over chdb.

THIS IS NOT CLICKHOUSE SERVER. No modern ClickHouse server can be installed
on these machines (Debian's 18.16 is too old for clickhouse-connect), so the
clickhouse-connect warehouse adapter is exercised against this stand-in. It
runs the real ClickHouse engine (chdb, in a separate process) behind just
enough of the HTTP protocol for clickhouse-connect:

* ``GET /ping`` → ``Ok.``; queries by GET or POST, text from the ``query``
  parameter and/or the body (concatenated, as ClickHouse does);
* any output format the query names (``FORMAT Native``, ``Arrow``, …) or
  ``default_format``, else TabSeparated; ``param_*`` bound parameters;
* inserts whose data follows ``FORMAT X`` in the body, or sits in the body
  while the ``query`` parameter holds ``INSERT … FORMAT X`` — streamed into
  chdb's ``send_insert``; request bodies in gzip/deflate/zstd/lz4 encoding;
* ``database`` (→ ``USE``), other unknown parameters become ``SET`` settings
  (sticky for the process: a single client per server is assumed);
* errors as HTTP 500 with ``X-ClickHouse-Exception-Code`` and the engine's
  ``Code: N. DB::Exception: …`` text.

Not emulated: sessions (one shared chdb connection, requests serialised),
users/quotas, progress headers, response compression, multipart external
data. Whatever passes here must still be checked against a real server
(the tests do so whenever ``CLICKHOUSE_URL`` is set).

Run: ``python emulated_clickhouse_http.py --data DIR [--port 0]``; it prints
``LISTENING <port>`` once ready and serves until terminated.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import threading
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import chdb

TRANSPORT_PARAMS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "session_id",
        "session_timeout",
        "session_check",
        "query_id",
        "user",
        "password",
        "quota_key",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "enable_http_compression",
        "http_zlib_compression_level",
        "client_protocol_version",
        "cancel_http_readonly_queries_on_client_close",
        "role",
    }
)
_INSERT_FORMAT = re.compile(
    r"^\s*(?P<stmt>INSERT\s+INTO\s.+?)\s+FORMAT\s+(?P<fmt>\w+)\s*\n?", re.I | re.S
)
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+\w+\s*;?\s*$", re.I)
_ERROR_CODE = re.compile(r"Code:\s*(\d+)")


def _decode_body(body: bytes, encoding: str | None) -> bytes:
    match (encoding or "").lower():
        case "" | "identity":
            return body
        case "gzip":
            return gzip.decompress(body)
        case "deflate":
            return zlib.decompress(body)
        case "zstd":
            from backports import zstd

            return zstd.decompress(body)
        case "lz4":
            import lz4.frame

            return bytes(lz4.frame.decompress(body))
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


class ChdbEngine:
    """One chdb connection, one request at a time (a streaming insert is exclusive)."""

    def __init__(self, path: str) -> None:
        self.conn = chdb.connect(path)
        self.lock = threading.Lock()
        self.applied: dict[str, str] = {}

    def _prepare(self, database: str | None, settings: dict[str, str]) -> None:
        for key, value in settings.items():
            if self.applied.get(key) != value:
                quoted = value.replace("\\", "\\\\").replace("'", "\\'")
                self.conn.query(f"SET {key} = '{quoted}'")
                self.applied[key] = value
        self.conn.query(f"USE `{database or 'default'}`")

    def run(
        self,
        text: str,
        data: bytes | None,
        params: dict[str, str],
        default_format: str,
        database: str | None,
        settings: dict[str, str],
    ) -> tuple[bytes, str, dict[str, Any]]:
        with self.lock:
            self._prepare(database, settings)
            insert = _INSERT_FORMAT.match(text)
            if insert and (data is not None or len(text) > insert.end()):
                payload = data if data is not None else text[insert.end() :].encode()
                inserter = self.conn.send_insert(insert["stmt"], insert["fmt"])
                try:
                    inserter.append(payload)
                    done = inserter.finish()
                except BaseException:
                    inserter.cancel()
                    raise
                summary = {
                    "written_rows": str(done.rows_written),
                    "written_bytes": str(done.bytes_written),
                }
                return b"", default_format, summary
            fmt = default_format
            result = (
                self.conn.query(text, fmt, params=params) if params else self.conn.query(text, fmt)
            )
            out = result.bytes() if hasattr(result, "bytes") else bytes(result)
            summary = {"read_rows": str(result.rows_read()), "read_bytes": str(result.bytes_read())}
            return out, fmt, summary


class Handler(BaseHTTPRequestHandler):
    server_version = "EmulatedClickHouse-chdb"
    protocol_version = "HTTP/1.1"
    engine: ChdbEngine

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        return

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            body = b"".join(chunks)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        return _decode_body(body, self.headers.get("Content-Encoding"))

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self._handle(b"")

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        self._handle(self._read_body())

    def _handle(self, body: bytes) -> None:
        url = urlsplit(self.path)
        if url.path.rstrip("/") in ("/ping", "/replicas_status"):
            self._reply(200, b"Ok.\n", {"Content-Type": "text/plain"})
            return
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        query_id = params.get("query_id") or str(uuid.uuid4())
        base = {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": "UTC",
            "X-ClickHouse-Server-Display-Name": "EMULATED-chdb",
        }
        text, data = params.get("query", ""), None
        if text and body:
            if _INSERT_FORMAT.match(text):
                data = body
            else:
                text = text + "\n" + body.decode()
        elif body:
            text = body.decode("utf-8", errors="surrogateescape")
            match = _INSERT_FORMAT.match(text)
            if match:
                data = body[len(text[: match.end()].encode("utf-8", errors="surrogateescape")) :]
                text = text[: match.end()]
        bound = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        settings = {
            k: v
            for k, v in params.items()
            if k not in TRANSPORT_PARAMS and not k.startswith("param_")
        }
        fmt = params.get("default_format", "TabSeparated")
        trailing = _TRAILING_FORMAT.search(text)
        if trailing:
            fmt = trailing.group(0).split()[1].rstrip(";")
        try:
            out, fmt, summary = self.engine.run(
                text, data, bound, fmt, params.get("database"), settings
            )
        except Exception as exc:  # every engine error becomes a ClickHouse-style 500
            message = str(exc)
            code = _ERROR_CODE.search(message)
            headers = dict(
                base,
                **{
                    "Content-Type": "text/plain; charset=UTF-8",
                    "X-ClickHouse-Exception-Code": code.group(1) if code else "1",
                },
            )
            self._reply(500, (message.strip() + "\n").encode(), headers)
            return
        headers = dict(
            base,
            **{
                "Content-Type": "application/octet-stream",
                "X-ClickHouse-Format": fmt,
                "X-ClickHouse-Summary": json.dumps(summary),
            },
        )
        self._reply(200, out, headers)


def serve(data: str, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Bind (port 0 = a free one) and return the server; call serve_forever()."""
    handler = type("BoundHandler", (Handler,), {"engine": ChdbEngine(data)})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description="EMULATED ClickHouse HTTP server over chdb")
    parser.add_argument("--data", required=True, help="chdb data directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = serve(args.data, args.host, args.port)
    print(f"LISTENING {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
