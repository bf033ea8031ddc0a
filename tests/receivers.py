"""Small real endpoints and rows shared by several test modules."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from flowguard.schema import TRAFFIC_LABELLING_HEADERS


def serve_webhook(port: int = 0) -> tuple[HTTPServer, list[dict]]:
    """A local Slack-webhook receiver in a thread; returns the server and what it received."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


def cic_row(**overrides: object) -> dict[str, object]:
    """One plausible CICIDS2017 "TrafficLabelling" row (published header names)."""
    row: dict[str, object] = {h: 1 for h in TRAFFIC_LABELLING_HEADERS}
    row.update({"Flow ID": "a-b-1-2-6", "Source IP": "192.168.10.5", "Destination IP": "1.2.3.4",
                "Source Port": 50000, "Destination Port": 443, "Protocol": 6,
                "Timestamp": "3/7/2017 9:15:00", "Flow Duration": 2_000_000,
                "Total Fwd Packets": 3, "Total Backward Packets": 1,
                "Total Length of Fwd Packets": 300, "Total Length of Bwd Packets": 100,
                "Flow Bytes/s": 200.0, "Flow Packets/s": 2.0, "Label": "BENIGN"})
    row.update(overrides)
    return row
