"""The test harness: handlers run under plain CPython as a job would run them."""

import sys
from pathlib import Path

import pytest

import wasmq_task
from wasmq_task import Fatal, Retry, task
from wasmq_task.testing import run

ROOT = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(ROOT / "examples/python/wordcount"), str(ROOT / "examples/python/reindex")]


@pytest.fixture(autouse=True)
def fresh_registry():
    # Each example registers its @task; tests import several, so reset between them.
    wasmq_task._handler = None
    yield
    wasmq_task._handler = None


def test_wordcount_counts_and_logs():
    import wordcount

    report = run(wordcount.run, {"text": "the cat and the hat.\nThe end"})
    assert report.result == {
        "words": 7,
        "lines": 2,
        "chars": 28,
        "top": [["the", 3], ["and", 1], ["cat", 1], ["end", 1], ["hat", 1]],
    }
    assert report.log == [("info", "counting 28 bytes of text")]
    assert report.progress == [(80, "counted")]


def test_fatal_is_raised_as_the_job_would_fail():
    import wordcount

    with pytest.raises(Fatal, match="input must be"):
        run(wordcount.run, {"no": "text"})


def test_reindex_drops_stop_words_and_weighs_the_title():
    import reindex

    page = {"id": 7, "title": "Bird watching", "body": "The birds and the bird song.", "tags": ["Nature"]}
    report = run(reindex.run, page)
    assert report.result["terms"] == {"bird": 4, "watching": 3, "birds": 1, "nature": 1, "song": 1}
    assert report.result["length"] == 3
    assert report.result["title_terms"] == ["bird", "watching"]


def test_bytes_in_bytes_out_and_job_info():
    @task
    def echo(input, cx):
        assert isinstance(input, bytes)
        cx.warn(f"attempt {cx.job.attempt} of {cx.job.max_attempts}")
        return input[::-1]

    report = run(echo, b"\xff\x00abc", attempt=2, max_attempts=5)
    assert report.result == b"cba\x00\xff"
    assert report.result_bytes == b"cba\x00\xff"
    assert report.log == [("warn", "attempt 2 of 5")]


def test_retry_and_other_exceptions_propagate():
    @task
    def flaky(input, cx):
        if input["n"] == 0:
            raise Retry("not yet")
        return 1 / input["n"] - 1 / (input["n"] - 1)

    with pytest.raises(Retry, match="not yet"):
        run(flaky, {"n": 0})
    wasmq_task._handler = None

    @task
    def divide(input, cx):
        return 1 / input

    with pytest.raises(ZeroDivisionError):
        run(divide, 0)


def test_one_task_per_module():
    @task
    def first(input, cx):
        return None

    with pytest.raises(RuntimeError, match="one @task"):

        @task
        def second(input, cx):
            return None


def test_bad_progress_and_level_are_errors():
    @task
    def bad(input, cx):
        cx.progress(101)

    with pytest.raises(ValueError, match="between 0 and 100"):
        run(bad, None)


def test_shipped_wit_is_the_projects():
    shipped = Path(wasmq_task.__file__).parent / "wit" / "task.wit"
    assert shipped.read_text() == (ROOT / "wit" / "task.wit").read_text()


def test_children_are_recorded_with_their_ids_and_options():
    @task
    def publish(input, cx):
        ids = [cx.enqueue("reindex", {"page": input["page"], "locale": loc}) for loc in input["locales"]]
        cx.enqueue("notify", b"raw", queue="mail", priority=5, delay_ms=1000, idempotency_key="page-7")
        return {"children": ids}

    report = run(publish, {"page": 7, "locales": ["en", "de"]}, job_id="40")
    assert report.result == {"children": [41, 42]}
    assert [(i, c.module, c.input) for i, c in report.children[:2]] == [
        (41, "reindex", b'{"page":7,"locale":"en"}'),
        (42, "reindex", b'{"page":7,"locale":"de"}'),
    ]
    last = report.children[2][1]
    assert (last.input, last.queue, last.priority, last.delay_ms, last.idempotency_key) == (
        b"raw", "mail", 5, 1000, "page-7",
    )


def test_a_refused_child_is_fatal_unless_the_store_was_unavailable():
    from wasmq_task import refusal

    assert isinstance(refusal("no module `x` is uploaded"), Fatal)
    assert isinstance(refusal("the store was unavailable; try again"), Retry)


def test_a_negative_or_fractional_delay_is_refused_before_the_host():
    @task
    def late(input, cx):
        return cx.enqueue("notify", {}, delay_ms=input)

    for bad in (-1, 1.5):
        with pytest.raises(ValueError, match="delay_ms"):
            run(late, bad)
