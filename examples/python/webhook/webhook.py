"""A webhook: POSTs a JSON document to a URL; the Python twin of examples/webhook.

Input `{"url": "https://…", "json": <any>, "debug": <bool, optional>}`; result
`{"status": <int>, "bytes": <bytes of the response body>}`. The module's config may set
`token` (sent as `Authorization: Bearer …`; make it a secret) and `agent` (the
`User-Agent`). `debug` logs the headers sent: a secret among them comes out as
`[redacted]` in the job's log. The host sends the request only if the module's
allow-list names the URL's host:

    wasmq-task build --http --config examples/python/webhook/webhook.py -o webhook-py.wasm
    wasmq module push webhook-py webhook-py.wasm --allow-host https://hooks.example.com
    wasmq job enqueue webhook-py --input '{"url": "https://hooks.example.com/in", "json": {"ok": true}}' --wait
"""

from wasmq_task import Fatal, Retry, task


@task
def run(input, cx):
    if not isinstance(input, dict) or not isinstance(input.get("url"), str) or "json" not in input:
        raise Fatal('input must be {"url": "...", "json": ...}')
    headers = {}
    token = cx.config("token")
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    agent = cx.config("agent")
    if agent is not None:
        headers["user-agent"] = agent
    if input.get("debug"):
        cx.debug(f"headers: {headers}")
    cx.info(f"POST {input['url']}")
    response = cx.http.post_json(input["url"], input["json"], headers)
    if response.status >= 500:
        raise Retry(f"the webhook answered {response.status}")
    return {"status": response.status, "bytes": len(response.body)}
