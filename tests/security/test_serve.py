"""`llamarada serve`: bounded connections (tested live in test_slow_clients.py), the Host list."""

from __future__ import annotations

import pytest

from app.api.protocol import GuardedHttpToolsProtocol
from app.cli import allowed_hosts, server_options
from app.core.config import DEFAULT_ALLOWED_HOSTS, Settings


def test_serve_bounds_every_connection() -> None:
    options = server_options(Settings(_env_file=None), "127.0.0.1", 8000, 2)
    assert options["timeout_keep_alive"] == 5
    assert options["limit_concurrency"] == 1024
    assert options["h11_max_incomplete_event_size"] == 16_384  # the guarded protocol reads it
    protocol = options["http"]
    assert protocol.func is GuardedHttpToolsProtocol
    assert protocol.keywords == {"header_timeout": 15.0, "body_timeout": 60.0}
    assert options["access_log"] is False  # the app's own line, without headers
    assert options["server_header"] is False


@pytest.mark.parametrize(
    ("host", "added"),
    [("192.168.1.20", "192.168.1.20"), ("Gateway.LAN", "gateway.lan"), ("fd00::5", "[fd00::5]")],
)
def test_serve_allows_the_host_it_binds(host: str, added: str) -> None:
    assert allowed_hosts(Settings(_env_file=None), host) == [*DEFAULT_ALLOWED_HOSTS, added]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "127.0.0.1", "localhost"])
def test_serve_adds_nothing_for_a_wildcard_or_a_default(host: str) -> None:
    assert allowed_hosts(Settings(_env_file=None), host) is None


def test_serve_keeps_the_operators_allowlist() -> None:
    settings = Settings(_env_file=None, allowed_hosts=["llm.example.com"])
    assert allowed_hosts(settings, "10.0.0.4") is None
