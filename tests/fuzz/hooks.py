"""wasmq's own checks for schemathesis (loaded by run.sh through SCHEMATHESIS_HOOKS)."""

import json

import schemathesis

# A module upload's body is raw bytes, sent as generated (mostly not Wasm: the server
# must refuse it with a problem, never fail).
schemathesis.serializer.alias("application/wasm", "application/octet-stream")


@schemathesis.check
def problem_json(ctx, response, case):
    """Every error is an RFC 9457 problem: `application/problem+json` with a `type`,
    a `title` and the `status` of the answer."""
    if response.status_code < 400:
        return None
    content_type = ";".join(response.headers.get("content-type", []))
    assert content_type.startswith("application/problem+json"), (
        f"{response.status_code} answered with content type {content_type!r}, "
        "not application/problem+json"
    )
    problem = json.loads(response.content)
    assert isinstance(problem, dict), "a problem is a JSON object"
    for field in ("type", "title", "status"):
        assert field in problem, f"the problem has no {field!r}: {problem}"
    assert problem["status"] == response.status_code, (
        f"the problem says status {problem['status']}, the answer {response.status_code}"
    )
    return None
