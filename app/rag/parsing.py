"""Uploads parsed in a child process bounded in CPU and wall time, memory, pages and text.

A hostile or broken file (a zip bomb, 150 MB of XML, 20,000 pages, a parser crash) costs a
child process its limits and the uploader a 413 or 422 naming the file; the server's own
process, and every other request, never see it. Each upload gets a fresh child forked from a
fork server that has the parsers imported already, so a child starts in milliseconds and
holds nothing from earlier uploads. (multiprocessing would re-run the server's `__main__` in
each fork-server child: for `llamarada serve`, importing the whole app; `_LeanPopen` starts
the child without it.)
"""

from __future__ import annotations

import asyncio
import io
import logging
import multiprocessing
import os
import resource
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing import context as mp_context
from multiprocessing import forkserver, popen_forkserver, reduction, spawn, util
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from app.core.errors import InvalidRequest, LlamaradaError, PayloadTooLarge, UnsupportedMediaType
from app.rag.chunking import PreparedDocument, Upload, prepare_upload, source_name

if TYPE_CHECKING:
    from app.core.config import RagSettings

logger = logging.getLogger(__name__)

# Imported once by the fork server, so that every child starts with the parsers loaded.
PRELOAD = ["app.rag.parsing", "pypdf", "docx", "langchain_text_splitters"]
POLL_SECONDS = 0.1  # how often the waiting thread checks for the wall limit and a gone client
_TOO_BIG_SIGNALS = (signal.SIGXCPU, signal.SIGKILL)  # CPU limit, or the kernel out of memory


@dataclass(frozen=True)
class ParseLimits:
    """What one file's parse may use."""

    cpu_seconds: int
    wall_seconds: float
    memory_bytes: int
    max_pages: int
    max_chars: int

    @classmethod
    def of(cls, settings: RagSettings) -> ParseLimits:
        """The limits the settings give."""
        return cls(
            cpu_seconds=settings.parse_cpu_seconds,
            wall_seconds=settings.parse_wall_seconds,
            memory_bytes=settings.parse_memory_mb * 1024 * 1024,
            max_pages=settings.max_pages,
            max_chars=settings.max_document_chars,
        )


@dataclass(frozen=True)
class _Refusal:
    """Why the child gave up on a file, as the parent turns it into an error."""

    status: int
    message: str


class UploadParser:
    """Parses and splits uploaded files, each in its own bounded child, `workers` at a time."""

    def __init__(self, limits: ParseLimits, workers: int) -> None:
        self.limits = limits
        self._slots = asyncio.Semaphore(workers)
        # Start the fork server now: it imports the parsers (seconds) while the app starts,
        # not while the first upload waits. One per process; later calls find it running.
        multiprocessing.get_context("forkserver").set_forkserver_preload(PRELOAD)
        forkserver.ensure_running()

    async def prepare(self, upload: Upload, chunk_size: int, overlap: int) -> PreparedDocument:
        """The file checked, parsed and split; 413 over a limit, 422 unreadable, 415 not text."""
        source_name(upload.name)  # a bad name needs no child
        async with self._slots:
            abandoned = threading.Event()
            work = asyncio.ensure_future(
                asyncio.to_thread(self._run, upload, chunk_size, overlap, abandoned)
            )
            try:
                return await asyncio.shield(work)
            except asyncio.CancelledError:
                # The client left: stop its child now, and hold the slot until it is gone, so
                # uploads cut short cannot pile up children beyond `workers`.
                abandoned.set()
                await asyncio.wait([work])
                if not work.cancelled():
                    work.exception()  # seen, so that nothing reports it as lost
                raise

    def _run(
        self, upload: Upload, chunk_size: int, overlap: int, abandoned: threading.Event
    ) -> PreparedDocument:
        receiver, sender = multiprocessing.get_context("forkserver").Pipe(duplex=False)
        child = _ParseProcess(
            target=_parse_in_child,
            args=(sender, upload, chunk_size, overlap, self.limits),
            name="llamarada-parse",
            daemon=True,
        )
        started = time.perf_counter()
        deadline = time.monotonic() + self.limits.wall_seconds
        child.start()
        sender.close()
        try:
            while not receiver.poll(POLL_SECONDS):
                if abandoned.is_set():
                    raise InvalidRequest(f"{upload.name!r}: the upload was abandoned")
                if time.monotonic() > deadline:
                    raise PayloadTooLarge(
                        f"{upload.name!r} took longer than {self.limits.wall_seconds:g} s to "
                        "read; it is too large or too complex"
                    )
            try:
                outcome: PreparedDocument | _Refusal = receiver.recv()
            except EOFError:  # the child died without a word
                child.join(5)
                raise self._died(upload.name, child.exitcode) from None
        finally:
            receiver.close()
            if child.is_alive():  # done or given up on: nothing of it is needed any more
                child.kill()
            # No join: the fork server reaps its children, and multiprocessing drops the
            # finished ones from its list at the next start; the uploader need not wait.
        logger.info(
            "upload parsed",
            extra={
                "file": upload.name,
                "bytes": len(upload.data),
                "parse_ms": round((time.perf_counter() - started) * 1000, 1),
                "refused": isinstance(outcome, _Refusal),
            },
        )
        if isinstance(outcome, _Refusal):
            raise _error(outcome)
        return outcome

    def _died(self, name: str, exitcode: int | None) -> LlamaradaError:
        if exitcode is not None and -exitcode in _TOO_BIG_SIGNALS:
            return PayloadTooLarge(
                f"{name!r} needs more than {self.limits.cpu_seconds} s of CPU or "
                f"{self.limits.memory_bytes // 2**20} MB of memory to read; "
                "it is too large or too complex"
            )
        logger.warning("the parser died on an upload", extra={"file": name, "exit": exitcode})
        return InvalidRequest(f"{name!r} could not be read: the parser failed on it", field="files")


class _LeanPopen(popen_forkserver.Popen):
    """The fork server's way of starting a child, minus re-running `__main__` in it."""

    def _launch(self, process_obj: Any) -> None:
        # As popen_forkserver.Popen._launch (Python 3.11-3.13), with the main module left out.
        prep_data = spawn.get_preparation_data(process_obj._name)
        prep_data.pop("init_main_from_path", None)
        prep_data.pop("init_main_from_name", None)
        buf = io.BytesIO()
        mp_context.set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            mp_context.set_spawning_popen(None)
        fds: list[int] = self._fds  # type: ignore[attr-defined]  # set by Popen.__init__
        self.sentinel, w = forkserver.connect_to_new_process(fds)
        parent_w = os.dup(w)  # the child watches it to learn that its parent is gone
        close_fds = util.close_fds  # type: ignore[attr-defined]  # untyped in typeshed
        self.finalizer = util.Finalize(self, close_fds, (parent_w, self.sentinel))
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class _ParseProcess(mp_context.ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> _LeanPopen:
        return _LeanPopen(process_obj)


def _error(refusal: _Refusal) -> LlamaradaError:
    if refusal.status == 413:
        return PayloadTooLarge(refusal.message)
    if refusal.status == 415:
        return UnsupportedMediaType(refusal.message)
    return InvalidRequest(refusal.message, field="files")


def _parse_in_child(
    sender: Connection, upload: Upload, chunk_size: int, overlap: int, limits: ParseLimits
) -> None:
    """The child's work: limits on itself first, then the parse; every outcome goes back."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
    # On top of what the child maps already (the interpreter and the parsers, shared with the
    # fork server), so the bound means the same whatever libraries are loaded.
    memory = _address_space() + limits.memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    name = upload.name
    outcome: PreparedDocument | _Refusal
    try:
        outcome = prepare_upload(upload, chunk_size, overlap, limits.max_chars, limits.max_pages)
    except LlamaradaError as exc:
        field = getattr(exc, "field", None)
        message = exc.message.removeprefix(f"{field}: ") if field else exc.message
        outcome = _Refusal(exc.status_code, message)
    except MemoryError:
        outcome = _Refusal(
            413,
            f"{name!r} needs more than {limits.memory_bytes // 2**20} MB of memory to read; "
            "it is too large or too complex",
        )
    except RecursionError:
        outcome = _Refusal(422, f"{name!r} is nested too deeply to read")
    except Exception as exc:
        # Parsers fail on hostile input in shapes nobody lists; each means "unreadable".
        outcome = _Refusal(422, f"{name!r} could not be read ({type(exc).__name__})")
    sender.send(outcome)
    sender.close()


def _address_space() -> int:
    """Bytes of address space this process maps now."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
