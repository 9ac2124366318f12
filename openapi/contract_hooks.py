"""Schemathesis hooks for the contract test (make contract).

An Idempotency-Key names one request: a client that follows the contract sends a new key with each new request.
Generated keys repeat across operations and phases (boundary values such as "0"), which would turn later requests
into replays, or into 422 idempotency-key-reused answers, for requests that never shared a key on purpose. Each
valid generated key therefore gets a unique suffix and stays valid; invalid keys are sent as generated, to be
rejected.
"""

import re
import uuid

import schemathesis

KEY = "Idempotency-Key"
RAW = re.compile(r"^[\x21\x23-\x7E](?:[\x20-\x7E]{0,253}[\x21-\x7E])?$")
QUOTED = re.compile(r'^"((?:[\x20\x21\x23-\x5B\x5D-\x7E]|\\["\\]){1,255})"$')


def unique(key):
    suffix = "~" + uuid.uuid4().hex[:16]
    if RAW.match(key):
        return key[: 255 - len(suffix)].rstrip(" ") + suffix
    quoted = QUOTED.match(key)
    if quoted:
        inner = quoted.group(1)
        # Cut before the suffix without splitting an escape pair.
        cut = inner[: 200]
        if (len(cut) - len(cut.rstrip("\\"))) % 2 == 1:
            cut = cut[:-1]
        return '"' + cut + suffix + '"'
    return key


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.headers and isinstance(case.headers.get(KEY), str):
        case.headers[KEY] = unique(case.headers[KEY])
