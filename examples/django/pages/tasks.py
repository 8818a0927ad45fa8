"""The site's tasks: plain Python, no ORM, so each runs in wasmq's sandbox as it is and
natively under Django's Immediate or Dummy backend in tests.

In the sandbox a task gets its arguments as JSON and returns a JSON value; it has no
settings, database, files or network, and may import the standard library's pure-Python
modules and this project's own pure-Python code.
"""

import re
from collections import Counter

try:
    from django.tasks import task
except ImportError:  # Django before 6.0: the django-tasks backport
    from django_tasks import task

STOP_WORDS = frozenset("a an and are as at be but by for from in is it of on or that the this to was with".split())
WORD = re.compile(r"[^\W_]+")


@task
def reindex_page(page_id, title, body):
    """A page's search document: its terms and their counts (title terms weigh 3)."""
    if not title.strip():
        raise ValueError(f"page {page_id} has no title; give it one before it is indexed")
    terms = Counter()
    for weight, text in ((3, title), (1, body)):
        for word in WORD.findall(text.lower()):
            if word not in STOP_WORDS:
                terms[word] += weight
    return {"page_id": page_id, "terms": dict(terms.most_common(20)), "words": len(WORD.findall(body))}


@task(queue_name="mail", priority=10)
def notify_subscribers(page_id, title, recipients):
    """The notification email of a new page, for the mailer to send (the sandbox has no
    network, so the task writes the message and the result carries it)."""
    return {
        "to": sorted(set(recipients)),
        "subject": f"New page: {title}",
        "body": f"A new page was published: {title!r} (page {page_id}).",
    }


@task
async def summarize(body, sentences=1):
    """The first sentences of a text (an async task: it awaits nothing)."""
    parts = [p.strip() for p in re.split(r"(?<=[.!?])\s+", body.strip()) if p.strip()]
    return " ".join(parts[:sentences])


@task(takes_context=True, queue_name="mail")
def send_digest(context, titles):
    """A digest email of new pages; the context says which attempt this is."""
    return {
        "subject": f"{len(titles)} new page{'s' if len(titles) != 1 else ''}",
        "body": "\n".join(f"- {t}" for t in titles),
        "result_id": context.task_result.id,
        "attempt": context.attempt,
    }
