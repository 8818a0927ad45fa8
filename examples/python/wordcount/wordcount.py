"""Counts the words, lines and characters of a text and lists its most frequent words:
the Python twin of examples/wordcount, with the same input and output.

Input `{"text": "..."}`; output `{"words": N, "lines": N, "chars": N, "top": [["word",
count], ...]}`, up to five words (lowercased, trimmed of punctuation), most frequent
first, ties in alphabetical order.

    wasmq-task build examples/python/wordcount/wordcount.py -o wordcount-py.wasm
    wasmq run wordcount-py.wasm --input '{"text": "the cat and the hat"}'
"""

from collections import Counter

from wasmq_task import Fatal, task

TOP = 5


def _key(word: str) -> str:
    start, end = 0, len(word)
    while start < end and not word[start].isalnum():
        start += 1
    while end > start and not word[end - 1].isalnum():
        end -= 1
    return word[start:end].lower()


@task
def run(input, cx):
    if not isinstance(input, dict) or not isinstance(input.get("text"), str):
        raise Fatal('input must be {"text": "..."}')
    text = input["text"]
    cx.info(f"counting {len(text.encode())} bytes of text")
    words = text.split()
    counts = Counter(k for k in map(_key, words) if k)
    cx.progress(80, "counted")
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]
    return {
        "words": len(words),
        "lines": len(text.splitlines()),
        "chars": len(text),
        "top": [[w, n] for w, n in top],
    }
