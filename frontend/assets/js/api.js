// The Llamarada HTTP API: JSON calls, and NDJSON streams read line by line as they arrive.

import { prefs } from "./prefs.js";

/** An error the API answered with (its `{"error": {"type", "message"}}` body), or a network one. */
export class ApiError extends Error {
  constructor(status, type, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.type = type;
    this.retryAfter = retryAfter;
  }
}

function headers(extra = {}) {
  const result = { Accept: "application/json, application/x-ndjson", ...extra };
  const key = prefs.apiKey;
  if (key) result.Authorization = `Bearer ${key}`;
  return result;
}

async function errorFrom(response) {
  const retryAfter = Number(response.headers.get("Retry-After")) || null;
  let type = "http_error";
  let message = `${response.status} ${response.statusText}`.trim();
  try {
    const { error } = await response.json();
    if (error && typeof error === "object") ({ type = type, message = message } = error);
    else if (typeof error === "string") message = error;
  } catch {
    // Not the API's JSON (a proxy's page): keep the status line.
  }
  return new ApiError(response.status, type, message, retryAfter);
}

/** fetch() that throws ApiError for a network failure or a non-2xx answer. */
export async function request(path, { method = "GET", body, signal, fresh = false, json = true } = {}) {
  const extra = {};
  if (json && body !== undefined) extra["Content-Type"] = "application/json";
  // `no-cache` asks for a new answer rather than the cached one (retry).
  if (fresh) extra["Cache-Control"] = "no-cache";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: headers(extra),
      body: json && body !== undefined ? JSON.stringify(body) : body,
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network_error", error.message);
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

/** The served models' names, from `GET /api/tags`. */
export async function listModels(signal) {
  const response = await request("api/tags", { signal });
  const { models = [] } = await response.json();
  return models.map((model) => model.name ?? model.model).filter(Boolean);
}

/**
 * A stream's error line, `{"error": message, "error_type": type}` (every NDJSON route ends a
 * failed stream with one), as an ApiError; null for any other line.
 */
export function streamError(line) {
  return typeof line?.error_type === "string" ? new ApiError(200, line.error_type, String(line.error)) : null;
}

/** Each JSON object of an NDJSON body, as soon as its line is complete; throws a stream's error line. */
export async function* ndjson(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        if (line) yield parsed(line);
      }
    }
    if (buffer.trim()) yield parsed(buffer);
  } finally {
    // Ends the response body when the reader stops early; a no-op once it is done.
    reader.cancel().catch(() => {});
  }
}

function parsed(line) {
  const value = JSON.parse(line);
  const error = streamError(value);
  if (error) throw error;
  return value;
}

/** Start a streamed chat (`POST /api/chat`); resolves once the answer's headers are in. */
export function streamChat(model, messages, { signal, fresh }) {
  return request("api/chat", { method: "POST", body: { model, messages, stream: true }, signal, fresh });
}

/** Start a streamed agent run (`POST /api/agent`): a line per tool step, then the answer. */
export function streamAgent(model, input, { signal, fresh }) {
  return request("api/agent", { method: "POST", body: { model, input, stream: true }, signal, fresh });
}

/**
 * Upload files (multipart parts named `files`) to an NDJSON progress route. XMLHttpRequest,
 * because fetch() cannot report upload progress: `onUpload(loaded, total)` while sending,
 * `onEvent(line)` for each progress line; resolves with the `done` line's result.
 */
export function uploadDocuments(path, files, { onUpload, onEvent }) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    for (const [name, value] of Object.entries(headers())) xhr.setRequestHeader(name, value);
    let seen = 0;
    let pending = "";
    let result = null;
    let failure = null;
    const read = () => {
      pending += xhr.responseText.slice(seen);
      seen = xhr.responseText.length;
      let newline;
      while ((newline = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, newline).trim();
        pending = pending.slice(newline + 1);
        if (!line) continue;
        const event = JSON.parse(line);
        const error = streamError(event);
        if (error) failure = error;
        else if (event.event === "done") result = event.result;
        else onEvent(event);
      }
    };
    xhr.upload.addEventListener("progress", (event) =>
      onUpload(event.loaded, event.lengthComputable ? event.total : 0),
    );
    xhr.addEventListener("progress", () => {
      if (xhr.status < 400) read();
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 400) {
        let type = "http_error";
        let message = `${xhr.status} ${xhr.statusText}`.trim();
        try {
          ({ type = type, message = message } = JSON.parse(xhr.responseText).error ?? {});
        } catch {
          // Not the API's JSON: keep the status line.
        }
        reject(new ApiError(xhr.status, type, message));
        return;
      }
      read();
      if (failure) reject(failure);
      else if (result) resolve(result);
      else reject(new ApiError(xhr.status, "incomplete", "the upload ended without a result"));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "network_error", "network error")));
    const form = new FormData();
    for (const file of files) form.append("files", file, file.name);
    xhr.send(form);
  });
}
