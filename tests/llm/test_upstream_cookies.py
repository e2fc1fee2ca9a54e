"""Model servers' cookies: an upstream client keeps none, so none goes out with another call."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.llm.base import Backend, ChatRequest
from app.llm.ollama import OllamaBackend
from app.llm.openai_upstream import OpenAIBackend
from app.llm.upstream_http import UpstreamClient
from tests.llm.ollama_script import Script, scripted_ollama
from tests.llm.openai_script import MODEL, OpenAIScript, scripted_openai
from tests.servers import serve_in_thread

SERVERS: dict[str, tuple[Callable[[], ASGIApp], Callable[[str], Backend], str]] = {
    "ollama": (lambda: scripted_ollama(Script()), OllamaBackend, "llama3.2:1b"),
    "openai": (
        lambda: scripted_openai(OpenAIScript()),
        lambda url: OpenAIBackend(f"{url}/v1"),
        MODEL,
    ),
}


def setting_cookies(app: ASGIApp, sent: list[str | None]) -> ASGIApp:
    """The app, with a session cookie on every answer; notes each request's Cookie header."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        cookie = dict(scope["headers"]).get(b"cookie")
        sent.append(None if cookie is None else cookie.decode())

        async def with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message["headers"], (b"set-cookie", b"session=caller-one; Path=/")]
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, with_cookie)

    return wrapped


@pytest.mark.parametrize("kind", SERVERS)
async def test_a_servers_cookie_never_goes_out_again(kind: str) -> None:
    make_app, make_backend, model = SERVERS[kind]
    sent: list[str | None] = []
    request = ChatRequest.model_validate(
        {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    )
    with serve_in_thread(setting_cookies(make_app(), sent)) as url:
        backend = make_backend(url)
        try:
            for _ in range(3):  # as three callers' chats
                assert [chunk async for chunk in backend.chat(request)][-1].done
        finally:
            await backend.aclose()
    assert sent == [None, None, None]


async def test_the_upstream_client_refuses_a_cookie_jar() -> None:
    async with UpstreamClient() as client:
        with pytest.raises(TypeError, match="no cookies"):
            client.cookies = {"session": "x"}
        client.cookies.set("session", "x")  # stored nowhere: every client shares this jar
        client.cookies.update({"other": "y"})
        assert not client.cookies
        assert "cookie" not in client.build_request("GET", "http://upstream/").headers
