"""A scripted Open-Meteo on 127.0.0.1: replays recorded response shapes and plays faults.

It answers `/v1/search` (geocoding) and `/v1/forecast` like the real services, counts every
request it receives, and can be told to answer with an error status, with a body that is not
JSON, or only after a delay.
"""

from __future__ import annotations

import copy
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# Shapes as the real APIs return them: geocoding leaves `results` out when nothing matches.
MONTERREY = {
    "id": 3995465,
    "name": "Monterrey",
    "latitude": 25.67507,
    "longitude": -100.31847,
    "elevation": 540.0,
    "feature_code": "PPLA",
    "country_code": "MX",
    "admin1_id": 3522542,
    "timezone": "America/Monterrey",
    "population": 1122874,
    "country_id": 3996063,
    "country": "Mexico",
    "admin1": "Nuevo León",
}
MONTERREY_ES = {**MONTERREY, "country": "México"}
MONTERREY_COLOMBIA = {
    "id": 3674453,
    "name": "Monterrey",
    "latitude": 4.87778,
    "longitude": -72.89556,
    "elevation": 475.0,
    "feature_code": "PPL",
    "country_code": "CO",
    "admin1_id": 3688620,
    "timezone": "America/Bogota",
    "population": 5500,
    "country_id": 3686110,
    "country": "Colombia",
    "admin1": "Casanare",
}
FORECAST_MONTERREY = {
    "latitude": 25.625,
    "longitude": -100.375,
    "generationtime_ms": 0.0439882278442383,
    "utc_offset_seconds": -21600,
    "timezone": "America/Monterrey",
    "timezone_abbreviation": "GMT-6",
    "elevation": 540.0,
    "current_units": {
        "time": "iso8601",
        "interval": "seconds",
        "temperature_2m": "°C",
        "relative_humidity_2m": "%",
        "wind_speed_10m": "km/h",
        "weather_code": "wmo code",
    },
    "current": {
        "time": "2026-11-29T11:00",
        "interval": 900,
        "temperature_2m": 24.3,
        "relative_humidity_2m": 41,
        "wind_speed_10m": 9.4,
        "weather_code": 1,
    },
}


@dataclass
class Request:
    """One request as the server saw it."""

    path: str
    query: dict[str, list[str]]


@dataclass
class OpenMeteoServer:
    """The scripted server; set its fields between requests to change what it answers."""

    places: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"monterrey": [MONTERREY, MONTERREY_COLOMBIA]}
    )
    places_es: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"monterrey": [MONTERREY_ES]}
    )
    forecast: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(FORECAST_MONTERREY))
    status: int = 200
    raw_body: bytes | None = None
    delay: float = 0.0
    requests: list[Request] = field(default_factory=list)
    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        """The base URL to give the client, for geocoding and forecast alike."""
        assert self._httpd is not None, "the server is not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        """Listen on a free port of 127.0.0.1 and serve in a background thread."""
        script = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                script._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll interval: shutdown() waits up to one interval.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Wake any delayed handler, stop serving and close the socket."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        with self._lock:
            self.requests.append(Request(url.path, parse_qs(url.query)))
        if self.delay and self._stopping.wait(self.delay):
            return  # the test is over and its client long gone
        if self.raw_body is not None:
            self._send(handler, self.status, self.raw_body, "text/html")
        elif self.status != 200:
            body = {"error": True, "reason": f"Scripted failure {self.status}"}
            self._send(handler, self.status, json.dumps(body).encode(), "application/json")
        elif url.path == "/v1/search":
            self._send_json(handler, self._search(parse_qs(url.query)))
        elif url.path == "/v1/forecast":
            self._send_json(handler, self.forecast)
        else:
            self._send(handler, 404, b"Not Found", "text/plain")

    def _search(self, query: dict[str, list[str]]) -> dict[str, Any]:
        name = query.get("name", [""])[0].casefold()
        count = int(query.get("count", ["10"])[0])
        table = self.places_es if query.get("language") == ["es"] else self.places
        found = table.get(name, [])[:count]
        answer: dict[str, Any] = {"generationtime_ms": 0.6}
        if found:
            answer["results"] = found
        return answer

    def _send_json(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        self._send(handler, 200, json.dumps(body).encode(), "application/json; charset=utf-8")

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes, kind: str) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", kind)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first, which is what a timeout test wants
