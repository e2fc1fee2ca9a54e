#!/bin/sh
# Entry point of the Llamarada image.
#
#   start.sh [serve [ARGS...]]   the API (default): llamarada serve on 0.0.0.0:$PORT, $WEB_CONCURRENCY workers
#   start.sh worker [ARGS...]    a batch worker
#   start.sh COMMAND...          anything else runs as given (a shell, a one-off CLI command)
#
# With LLAMARADA_LLM_BACKEND=ollama, serve and worker first wait for every Ollama server
# (polling its API for up to OLLAMA_WAIT_TIMEOUT seconds, default 120), pull the models that
# are missing (LLAMARADA_PULL_MODELS, default the default model) and create the custom models
# of models/*/Modelfile. Then this shell is replaced by the server, so signals reach it directly.
set -eu

role="${1:-serve}"
if [ "$#" -gt 0 ]; then shift; fi

case "$role" in
    serve | worker) ;;
    *) exec "$role" "$@" ;;
esac

if [ "${LLAMARADA_LLM_BACKEND:-embedded}" = "ollama" ]; then
    python -m app.bootstrap ollama
fi

if [ "$role" = "worker" ]; then
    exec llamarada worker "$@"
fi
exec llamarada serve --host "${HOST:-0.0.0.0}" --port "${PORT:-8000}" \
    --workers "${WEB_CONCURRENCY:-2}" "$@"
