"""A slow-client script: many sockets sending request headers a byte at a time, on loopback only.

`python -m tests.slowloris PORT [--clients N] [--seconds S]` holds N connections to
127.0.0.1:PORT for S seconds, each sending `GET /health/live` and then one header byte every
50 ms, reconnecting whenever the server closes it; it prints one JSON line: how many answers came
back, by status line, and how many connections ended without one (a reset or a silent close).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter

LINE_GAP = 0.05  # seconds between two header bytes


async def one_client(port: int, until: float, seen: Counter[str]) -> None:
    """Keep one slow connection open until `until`, starting a new one when it is closed."""
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answer = asyncio.ensure_future(reader.read(65_536))  # an answer comes in one piece
        writer.write(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        try:
            while not answer.done() and loop.time() < until:
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(LINE_GAP)
        except ConnectionError:
            pass
        if answer.done():
            try:
                first = answer.result().split(b"\r\n", 1)[0].decode("latin-1")
            except ConnectionError:
                first = ""
            seen[first or "closed without an answer"] += 1
        else:
            answer.cancel()
            seen["still open at the end"] += 1
        writer.close()


async def run(port: int, clients: int, seconds: float) -> Counter[str]:
    """Every client at once for `seconds`; the answers they saw."""
    until = asyncio.get_running_loop().time() + seconds
    seen: Counter[str] = Counter()
    await asyncio.gather(*(one_client(port, until, seen) for _ in range(clients)))
    return seen


def main() -> None:
    """Parse the arguments, run, print the tally."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.port, args.clients, args.seconds))), flush=True)


if __name__ == "__main__":
    main()
