"""The child process that turns JSON schemas into llama.cpp grammars, checked by llama.cpp.

Run by `app.llm.grammar` as `python -I grammar_worker.py MEMORY_BYTES`: it imports only the
standard library and llama_cpp, so a converter that runs out of memory, or a llama.cpp parser
that crashes, ends this process and not the server. One JSON request per line on stdin
(`{"schema": text, "max_bytes": n}`), one JSON reply per line on stdout: `{"grammar": ...}`
or `{"error": ...}`.
"""

from __future__ import annotations

import json
import os
import resource
import sys
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


def compile_schema(schema: str, max_bytes: int, lib: Any, to_gbnf: Any) -> dict[str, str]:
    """The grammar for `schema`, or why there is none."""
    try:
        grammar: str = to_gbnf(schema)
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
    sampler = lib.llama_sampler_init_grammar(None, grammar.encode(), b"root")
    if not sampler:
        return {"error": "the schema's grammar is too large or complex for llama.cpp"}
    lib.llama_sampler_free(sampler)
    return {"grammar": grammar}


def main() -> None:
    """Answer requests until stdin closes."""
    budget = int(sys.argv[1])
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)  # llama.cpp prints the whole grammar on a parse error: not to the pipe
    os.dup2(quiet, 2)
    from llama_cpp import llama_cpp as lib
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    limit = _vm_size() + budget  # what the imports took, and the budget on top
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    for line in sys.stdin:
        request = json.loads(line)
        reply = compile_schema(request["schema"], request["max_bytes"], lib, json_schema_to_gbnf)
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
