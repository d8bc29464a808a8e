"""Standard Webhooks signing: the specification's known answer, both directions against the
independent `standardwebhooks` package, and every way a receiver's check must fail."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import standardwebhooks

from node.webhooks.signing import (
    SECRET_PREFIX,
    InvalidWebhookSignature,
    generate_secret,
    sign,
    signature_headers,
    verify,
)

# The example in the Standard Webhooks specification (and the reference libraries' tests).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

BODY = '{"type":"message.posted","data":{"body":"déjà vu"}}'.encode()


def test_known_answer_from_the_specification():
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    headers = {"webhook-id": SPEC_ID, "webhook-timestamp": str(SPEC_TIMESTAMP), "webhook-signature": SPEC_SIGNATURE}
    assert verify(SPEC_SECRET, headers, SPEC_BODY, now_s=SPEC_TIMESTAMP + 10) == SPEC_ID


def test_secrets_are_whsec_and_32_random_bytes():
    first, second = generate_secret(), generate_secret()
    assert first != second
    assert first.startswith(SECRET_PREFIX)
    assert len(base64.b64decode(first.removeprefix(SECRET_PREFIX), validate=True)) == 32


def test_the_standardwebhooks_package_accepts_our_deliveries():
    secret, now = generate_secret(), int(time.time())
    headers = signature_headers(secret, "msg_1_42", now, BODY)
    assert standardwebhooks.Webhook(secret).verify(BODY, headers) == {
        "type": "message.posted", "data": {"body": "déjà vu"}}
    tampered = BODY.replace(b"vu", b"VU")
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(tampered, headers)


def test_we_accept_what_the_standardwebhooks_package_signs():
    secret, now = generate_secret(), int(time.time())
    signature = standardwebhooks.Webhook(secret).sign("msg_1_42", datetime.fromtimestamp(now, tz=UTC), BODY.decode())
    headers = {"Webhook-Id": "msg_1_42", "Webhook-Timestamp": str(now), "Webhook-Signature": signature}
    assert verify(secret, headers, BODY, now_s=now) == "msg_1_42"


def _headers(secret: str, *, timestamp: int = 1_700_000_000, msg_id: str = "msg_7_9") -> dict[str, str]:
    return signature_headers(secret, msg_id, timestamp, BODY)


def test_any_of_several_signatures_may_match():
    secret, old_secret = generate_secret(), generate_secret()
    headers = _headers(secret)
    rotated = sign(old_secret, "msg_7_9", 1_700_000_000, BODY)
    headers["webhook-signature"] = f"v2,abc v1,!!notbase64 {rotated} {headers['webhook-signature']}"
    assert verify(secret, headers, BODY, now_s=1_700_000_000) == "msg_7_9"


@pytest.mark.parametrize("change", [
    "body", "secret", "id", "too_old", "too_new", "no_signature", "no_id", "no_timestamp", "timestamp_not_integer",
    "only_other_versions", "signature_of_other_timestamp",
])
def test_every_failed_check_raises_one_error(change):
    secret = generate_secret()
    headers, body, now = _headers(secret), BODY, 1_700_000_000
    if change == "body":
        body = BODY + b" "
    elif change == "secret":
        secret = generate_secret()
    elif change == "id":
        headers["webhook-id"] = "msg_7_10"
    elif change == "too_old":
        now += 301
    elif change == "too_new":
        now -= 301
    elif change.startswith("no_"):
        del headers["webhook-" + change.removeprefix("no_")]
    elif change == "timestamp_not_integer":
        headers["webhook-timestamp"] = "1700000000.0"
    elif change == "only_other_versions":
        headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v1a,")
    elif change == "signature_of_other_timestamp":
        headers["webhook-timestamp"] = str(now + 1)
    with pytest.raises(InvalidWebhookSignature):
        verify(secret, headers, body, now_s=now)


def test_the_tolerance_is_five_minutes_either_way():
    secret = generate_secret()
    headers = _headers(secret)
    for now in (1_700_000_000 - 300, 1_700_000_000 + 300):
        assert verify(secret, headers, BODY, now_s=now) == "msg_7_9"


@pytest.mark.parametrize("secret", ["whsec_", "whsec_not*base64", "whsec_" + base64.b64encode(b"short").decode()])
def test_a_malformed_secret_is_refused(secret):
    with pytest.raises(InvalidWebhookSignature):
        sign(secret, "msg_1_1", 1, BODY)


def test_the_recipe_in_the_docs_verifies_a_delivery():
    text = (Path(__file__).parents[3] / "docs" / "webhooks.md").read_text("utf-8")
    recipe = text.split("## Verifying", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(recipe, namespace)  # the snippet as a receiver would paste it
    secret, now = generate_secret(), int(time.time())
    headers = signature_headers(secret, "msg_3_1842", now, BODY)
    assert namespace["verify"](secret, headers, BODY) == "msg_3_1842"
    with pytest.raises(ValueError):
        namespace["verify"](secret, headers, BODY + b"x")
    with pytest.raises(ValueError):
        namespace["verify"](secret, signature_headers(secret, "msg_3_1842", now - 301, BODY), BODY)
