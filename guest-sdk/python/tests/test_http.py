"""`cx.http` and `cx.config` under the harness: requests go to a fake, hop by hop."""

import sys
from pathlib import Path

import pytest

import wasmq_task
from wasmq_task import Fatal, HttpDenied, HttpFailed, HttpInvalid, Retry, task
from wasmq_task.http import MAX_REDIRECTS, Response
from wasmq_task.testing import run

ROOT = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(ROOT / "examples/python/webhook")]


@pytest.fixture(autouse=True)
def fresh_registry():
    wasmq_task._handler = None
    yield
    wasmq_task._handler = None


def test_webhook_posts_with_config_and_a_redacted_secret():
    import webhook

    seen = []

    def upstream(request):
        seen.append(request)
        return Response(202, [("content-type", "text/plain")], b"thanks")

    report = run(
        webhook.run,
        {"url": "https://hooks.example.com/in?x=1", "json": {"n": 1}, "debug": True},
        config={"agent": "wasmq-test/1"},
        secrets={"token": "s3cr3t"},
        http=upstream,
    )
    assert report.result == {"status": 202, "bytes": 6}
    [request] = seen
    assert (request.method, request.url, request.body) == ("POST", "https://hooks.example.com/in?x=1", b'{"n":1}')
    assert request.parts() == ("https", "hooks.example.com", "/in?x=1")
    headers = dict(request.headers)
    assert headers["authorization"] == "Bearer s3cr3t"
    assert headers["user-agent"] == "wasmq-test/1"
    assert headers["content-type"] == "application/json"
    assert "s3cr3t" not in report.log_text()
    assert "Bearer [redacted]" in report.log_text() and "wasmq-test/1" in report.log_text()


def test_a_5xx_is_retried_and_no_http_is_denied():
    import webhook

    with pytest.raises(Retry, match="answered 503"):
        run(webhook.run, {"url": "http://h.example/", "json": 1}, http=lambda r: Response(503, [], b""))
    # No `http` given: refused as a module with no allow-list is, which fails the job.
    with pytest.raises(HttpDenied, match="request denied") as denied:
        run(webhook.run, {"url": "http://h.example/", "json": 1})
    assert isinstance(denied.value, Fatal)


def test_redirects_are_followed_hop_by_hop():
    hops = []

    def upstream(request):
        hops.append((request.method, request.url, request.body))
        if request.url.endswith("/start"):
            return Response(303, [("Location", "/next")], b"")
        if request.url.endswith("/next"):
            return Response(307, [("location", "https://other.example/end")], b"")
        return Response(200, [], b'{"done": true}')

    @task
    def go(input, cx):
        r = cx.http.send("post", "https://a.example/start", {"content-type": "text/plain"}, "hi")
        return {"status": r.status, "json": r.json(), "header": r.header("X-Missing")}

    assert run(go, None, http=upstream).result == {"status": 200, "json": {"done": True}, "header": None}
    # A 303 turns the POST into a GET without a body; a 307 keeps the method.
    assert hops == [
        ("POST", "https://a.example/start", b"hi"),
        ("GET", "https://a.example/next", b""),
        ("GET", "https://other.example/end", b""),
    ]


def test_a_redirect_loop_fails_the_attempt():
    calls = []

    def loop(request):
        calls.append(request.url)
        return Response(302, [("location", request.url)], b"")

    @task
    def go(input, cx):
        cx.http.get("http://loop.example/")

    with pytest.raises(HttpFailed, match=f"more than {MAX_REDIRECTS} redirects") as failed:
        run(go, None, http=loop)
    assert isinstance(failed.value, Retry)
    assert len(calls) == MAX_REDIRECTS + 1


def test_a_bad_url_is_invalid_before_anything_is_sent():
    @task
    def go(input, cx):
        cx.http.get(input)

    for url in ["ftp://files.example/", "http:///nohost", "not a url"]:
        with pytest.raises(HttpInvalid, match="invalid request"):
            run(go, url, http=lambda r: pytest.fail(f"sent {r.url}"))
        wasmq_task._handler = None
        task(go)


def test_config_reads_values_and_secrets():
    @task
    def read(input, cx):
        return [cx.config("a"), cx.config("token"), cx.config("missing")]

    assert run(read, None, config={"a": "1"}, secrets={"token": "t"}).result == ["1", "t", None]
    with pytest.raises(ValueError, match="`a` is in both"):
        run(read, None, config={"a": "1"}, secrets={"a": "2"})


def test_the_shipped_wasi_wit_is_the_js_sdks():
    py = Path(wasmq_task.__file__).parent / "wit"
    js = ROOT / "guest-sdk/js/wit"
    files = sorted(p.relative_to(py) for p in py.rglob("*.wit"))
    assert len(files) == 6
    for f in files:
        assert (py / f).read_text() == (js / f).read_text(), f
    # wasi:config as the host links it, and as the Rust SDK binds it.
    assert (py / "deps/config/store.wit").read_text() == (ROOT / "guest-sdk/wit-config/store.wit").read_text()
