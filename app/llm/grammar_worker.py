"""The child process that turns JSON schemas into llama.cpp grammars, checked by llama.cpp.

Run by `app.llm.grammar` as `python -I grammar_worker.py MEMORY_BYTES [MODEL_PATH]`: it imports
only the standard library, numpy and llama_cpp, so a converter that runs out of memory, or a
llama.cpp parser that crashes, ends this process and not the server. With the model file it also
samples a few tokens through each grammar, to refuse one whose matching crawls. One JSON request
per line on stdin (`{"schema", "max_bytes", "tokens", "token_ms"}`), one JSON reply per line on
stdout: `{"grammar": ...}` or `{"error": ...}`.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import sys
import time
from typing import Any

# The converter's string character lets raw control characters through, which JSON forbids (and
# clients' parsers refuse); llama.cpp's own converter and JSON grammar exclude them like this.
LOOSE_CHAR = 'char ::= [^"\\\\] |'
STRICT_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'


def _vm_size() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


class Builder:
    """llama.cpp's converter and parser, and the model's vocabulary when there is a model file."""

    def __init__(self, model_path: str | None) -> None:
        from llama_cpp import llama_cpp as lib
        from llama_cpp.llama_grammar import json_schema_to_gbnf

        self.lib: Any = lib
        self.to_gbnf = json_schema_to_gbnf
        self.vocab: Any = None
        if model_path:
            params = lib.llama_model_default_params()
            params.vocab_only = True
            model = lib.llama_model_load_from_file(model_path.encode(), params)
            self.vocab = lib.llama_model_get_vocab(model) if model else None

    def compile(self, schema: str, max_bytes: int, tokens: int, token_ms: int) -> dict[str, str]:
        """The grammar for `schema`, or why there is none."""
        try:
            grammar: str = self.to_gbnf(schema)
        except MemoryError:
            return {"error": "the schema's grammar needs more memory than this server allows"}
        except RecursionError:
            return {"error": "the schema nests too deeply to build a grammar"}
        except Exception as exc:  # the converter raises bare exceptions on schemas it cannot map
            return {"error": f"unsupported JSON schema: {str(exc)[:200]}"}
        grammar = grammar.replace(LOOSE_CHAR, STRICT_CHAR)
        size = len(grammar.encode())
        if size > max_bytes:
            return {"error": f"the schema's grammar is {size} bytes, at most {max_bytes} allowed"}
        # llama.cpp parses here exactly as it will for the model; NULL means it refused.
        sampler = self.lib.llama_sampler_init_grammar(self.vocab, grammar.encode(), b"root")
        if not sampler:
            return {"error": "the schema's grammar is too large or complex for llama.cpp"}
        try:
            slowest = self._follow(sampler, tokens) if self.vocab else 0.0
        finally:
            self.lib.llama_sampler_free(sampler)
        if slowest * 1000 > token_ms:
            return {
                "error": f"following the schema's grammar takes {slowest * 1000:.0f} ms of CPU "
                f"per token, more than this server allows ({token_ms} ms)"
            }
        return {"grammar": grammar}

    def _follow(self, sampler: Any, tokens: int) -> float:
        """Sample `tokens` tokens through the grammar on random scores; the slowest one's CPU
        seconds. An ambiguous grammar makes llama.cpp's matching crawl on the model thread."""
        import numpy as np

        lib = self.lib
        count = lib.llama_vocab_n_tokens(self.vocab)
        data = (lib.llama_token_data * count)()
        view = np.frombuffer(
            data, dtype=[("id", np.int32), ("logit", np.float32), ("p", np.float32)]
        )
        scores = np.random.default_rng(0)  # the same walk for the same schema
        slowest = 0.0
        for _ in range(tokens):
            view["id"] = np.arange(count)
            view["logit"] = scores.random(count, dtype=np.float32)
            view["p"] = 0
            candidates = lib.llama_token_data_array(data, count, -1, False)
            started = time.process_time()
            lib.llama_sampler_apply(sampler, ctypes.byref(candidates))
            best = int(np.argmax(view["logit"]))
            if not np.isfinite(view["logit"][best]):
                break  # nothing allowed: the grammar is complete
            token = int(view["id"][best])
            lib.llama_sampler_accept(sampler, token)
            slowest = max(slowest, time.process_time() - started)
            if lib.llama_vocab_is_eog(self.vocab, token):
                break
        return slowest


def main() -> None:
    """Answer requests until stdin closes."""
    budget = int(sys.argv[1])
    model_path = sys.argv[2] if len(sys.argv) > 2 else None
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)  # llama.cpp prints the whole grammar on a parse error: not to the pipe
    os.dup2(quiet, 2)
    builder = Builder(model_path)
    import numpy  # noqa: F401  # imported before the limit, like everything else

    limit = _vm_size() + budget  # what the imports and the vocabulary took, and the budget on top
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    replies.write(json.dumps({"ready": True}) + "\n")
    replies.flush()
    for line in sys.stdin:
        request = json.loads(line)
        reply = builder.compile(
            request["schema"], request["max_bytes"], request["tokens"], request["token_ms"]
        )
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
