"""What a batch is made of: jobs and their counters, items, outcomes, stored files."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.auth import ANONYMOUS, Principal
from app.llm.base import Message, Options


class Outcome(StrEnum):
    """What became of one item (the `llama_batch_items_total` status label)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobStatus(StrEnum):
    """A job's life; `cancelling` and `expiring` wait for items already running."""

    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    EXPIRING = "expiring"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


FINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED})
STOPPING = frozenset({JobStatus.CANCELLING, JobStatus.EXPIRING})


class JobKind(StrEnum):
    """Which surface made the job, and so the shape of its result lines."""

    NATIVE = "native"
    OPENAI = "openai"


class Claim(StrEnum):
    """A worker's answer from the store before it runs an item."""

    RUN = "run"  # start it (this attempt is counted)
    DONE = "done"  # already has its result: nothing to do
    STOPPED = "stopped"  # the job is being cancelled or expired: record that instead
    EXHAUSTED = "exhausted"  # started too often (workers lost mid-item): record a failure
    GONE = "gone"  # the job no longer exists


class Recorded(StrEnum):
    """What `record` did: only the first result of an item counts."""

    NEW = "new"
    DUPLICATE = "duplicate"
    FINISHED = "finished"  # new, and the job's last: it is now final


@dataclass
class JobRecord:
    """A job as stored: its counters and times (unix seconds)."""

    id: str
    kind: JobKind
    total: int
    created_at: float
    expires_at: float
    status: JobStatus = JobStatus.QUEUED
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    stopped_at: float | None = None
    output_bytes: int = 0
    error_bytes: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    owner: str = ""  # the name of the key that submitted it ("": from before jobs had owners)
    # What that key may do, kept so that its items run with no more than it (see `caller`).
    grants: dict[str, Any] = field(default_factory=dict)
    # The trace context of the request that queued it: its items' spans join that trace.
    trace: dict[str, str] = field(default_factory=dict)

    @property
    def done(self) -> int:
        """Items with a result."""
        return self.succeeded + self.failed + self.cancelled

    @property
    def final(self) -> bool:
        """Whether every item has its result."""
        return self.status in FINAL

    def caller(self) -> Principal:
        """Whom the job's items run for: the key that submitted it, as it was then."""
        if not self.owner:  # a job from before keys were recorded: no keys were set then
            return ANONYMOUS
        grants = self.grants
        models = grants.get("models")
        return Principal(
            self.owner,
            admin=bool(grants.get("admin", False)),
            models=None if models is None else tuple(models),
            rpm=grants.get("rpm"),
            tpm=grants.get("tpm"),
        )

    @staticmethod
    def grants_of(caller: Principal) -> dict[str, Any]:
        """What `caller` records of a caller."""
        models = None if caller.models is None else list(caller.models)
        return {"admin": caller.admin, "models": models, "rpm": caller.rpm, "tpm": caller.tpm}

    def to_fields(self) -> dict[str, str]:
        """The record as a flat string map (a Redis hash)."""
        out = {}
        for name, value in asdict(self).items():
            if value is None:
                continue
            out[name] = json.dumps(value) if name in _JSON_FIELDS else str(value)
        return out

    @classmethod
    def from_fields(cls, raw: dict[str, str]) -> JobRecord:
        """The record `to_fields` wrote."""
        values: dict[str, Any] = {}
        for spec in fields(cls):
            text = raw.get(spec.name)
            if text is None:
                continue
            if spec.name in _JSON_FIELDS:
                values[spec.name] = json.loads(text)
            elif spec.name in ("id", "owner"):
                values[spec.name] = text
            elif spec.name == "kind":
                values["kind"] = JobKind(text)
            elif spec.name == "status":
                values["status"] = JobStatus(text)
            elif spec.name.endswith("_at"):
                values[spec.name] = float(text)
            else:
                values[spec.name] = int(text)
        return cls(**values)


_JSON_FIELDS = ("meta", "grants", "trace")


def final_status(job: JobRecord) -> JobStatus:
    """The status a job ends with once every item has its result (the Lua script mirrors it)."""
    if job.status == JobStatus.CANCELLING:
        return JobStatus.CANCELLED
    if job.status == JobStatus.EXPIRING:
        return JobStatus.EXPIRED
    if job.succeeded == 0 and job.failed > 0:
        return JobStatus.FAILED
    return JobStatus.COMPLETED


@dataclass
class FileRecord:
    """An uploaded file (`/v1/files`)."""

    id: str
    filename: str
    purpose: str
    bytes: int
    created_at: float
    expires_at: float
    owner: str = ""  # the name of the key that uploaded it

    def to_fields(self) -> dict[str, str]:
        """The record as a flat string map."""
        return {name: str(value) for name, value in asdict(self).items()}

    @classmethod
    def from_fields(cls, raw: dict[str, str]) -> FileRecord:
        """The record `to_fields` wrote."""
        return cls(
            id=raw["id"],
            filename=raw["filename"],
            purpose=raw["purpose"],
            bytes=int(raw["bytes"]),
            created_at=float(raw["created_at"]),
            expires_at=float(raw["expires_at"]),
            owner=raw.get("owner", ""),
        )


class BatchItem(BaseModel):
    """One request of a batch, as stored for the worker that runs it."""

    route: Literal["chat", "openai_chat"]
    body: dict[str, Any]
    custom_id: str | None = None


class BatchRequest(BaseModel):
    """`POST /api/batch` and `POST /api/batch/jobs`: one model, many prompts or chats."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(default="", max_length=256, description="empty: the default model")
    prompts: list[str] | None = Field(default=None, description="one user message each")
    messages_list: list[list[Message]] | None = Field(
        default=None, description="chats, one per list of messages"
    )
    system: str | None = Field(default=None, description="system prompt for every prompt")
    options: Options | None = None
    concurrency: int | None = Field(default=None, ge=1, description="items at once (sync only)")

    @model_validator(mode="after")
    def _one_kind(self) -> BatchRequest:
        if (self.prompts is None) == (self.messages_list is None):
            raise ValueError("send exactly one of 'prompts' and 'messages_list'")
        return self

    def items(self) -> list[BatchItem]:
        """One item per prompt or chat."""
        if self.prompts is not None:
            chats = [prompt_messages(prompt, self.system) for prompt in self.prompts]
        else:
            chats = [
                [m.model_dump(exclude_none=True) for m in chat] for chat in self.messages_list or []
            ]
        return [chat_item(self.model, chat, self.options) for chat in chats]


def prompt_messages(prompt: str, system: str | None) -> list[dict[str, Any]]:
    """A prompt as a chat: the user's message after the system prompt, if any."""
    messages = [{"role": "system", "content": system}] if system else []
    return [*messages, {"role": "user", "content": prompt}]


def chat_item(
    model: str,
    messages: list[dict[str, Any]],
    options: Options | None,
    custom_id: str | None = None,
) -> BatchItem:
    """An item answered like `POST /api/chat` with these messages (and so cached alike)."""
    body: dict[str, Any] = {"model": model, "messages": messages, "stream": False}
    if options is not None and options.model_dump(exclude_none=True):
        body["options"] = options.model_dump(exclude_none=True)
    return BatchItem(route="chat", body=body, custom_id=custom_id)
