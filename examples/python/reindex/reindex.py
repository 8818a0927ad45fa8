"""A page's fields → a search document, as a Wagtail site's background reindex makes one.

Input `{"id": 42, "title": "...", "body": "...", "tags": ["..."], "locale": "en"}`;
output `{"id": 42, "locale": "en", "terms": {"term": count, ...}, "length": N,
"title_terms": [...]}`: text lowercased and split into words, English stop words removed,
each term counted; title terms weigh three times a body term.

    wasmq-task build examples/python/reindex/reindex.py -o reindex.wasm
"""

import re
from collections import Counter

from wasmq_task import Fatal, task

STOP_WORDS = frozenset(
    "a an and are as at be but by for from has have if in into is it its no not of on or "
    "so such that the their then there these they this to was were which while will with".split()
)
TITLE_WEIGHT = 3
WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def terms(text: str) -> list:
    return [w for w in (m.group(0).lower() for m in WORD.finditer(text)) if w not in STOP_WORDS]


@task
def run(page, cx):
    if not isinstance(page, dict) or "id" not in page:
        raise Fatal("input must be a page: {\"id\": ..., \"title\": ..., \"body\": ...}")
    for name in ("title", "body"):
        if not isinstance(page.get(name, ""), str):
            raise Fatal(f"`{name}` must be a string")
    title = terms(page.get("title", ""))
    body = terms(page.get("body", ""))
    tags = [t.lower() for t in page.get("tags", []) if isinstance(t, str)]
    cx.info(f"page {page['id']}: {len(title)} title terms, {len(body)} body terms")
    counts = Counter(body)
    for t in title:
        counts[t] += TITLE_WEIGHT
    for t in tags:
        counts[t] += 1
    cx.progress(100, "indexed")
    return {
        "id": page["id"],
        "locale": page.get("locale", "en"),
        "terms": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        "length": len(body),
        "title_terms": title,
    }
