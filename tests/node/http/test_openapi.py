"""What the documents promise about errors and headers (the fuzz in test_api_fuzz.py holds the
node to it): each operation lists the error statuses it may answer, with the one error shape,
and posts name the Idempotency-Key header and their 429 with Retry-After."""

from __future__ import annotations

from node.http.openapi import error_statuses
from node.http.posting import post_endpoint
from node.workspace.models import MessageOut, PostMessage


async def _documents(node) -> list[dict]:
    return [await (await listener.get("/openapi.json")).json() for listener in (node.admin, node.client)]


async def test_every_operation_lists_its_errors_and_nothing_is_left_to_a_catch_all(node):
    for document in await _documents(node):
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                responses = operation["responses"]
                assert "default" not in responses and "500" not in responses, (method, path)
                if "security" in operation:
                    assert {"401", "503"} <= set(responses), (method, path)
                if "{" in path:
                    assert {"404", "422"} <= set(responses), (method, path)
                if "requestBody" in operation:
                    assert {"400", "413", "422"} <= set(responses), (method, path)
                for status, answer in responses.items():
                    if status.startswith(("4", "5")):
                        schema = answer["content"]["application/json"]["schema"]["$ref"]
                        expected = "InvalidRequestBody" if status == "422" else "ErrorBody"
                        assert schema == f"#/components/schemas/{expected}", (method, path, status)


async def test_a_422_names_its_fields_in_the_document(node):
    admin, _client = await _documents(node)
    detail = admin["components"]["schemas"]["InvalidRequestDetail"]
    assert {"code", "message", "fields"} <= set(detail["required"])


async def test_posts_name_the_idempotency_key_and_their_429(node):
    _admin, client = await _documents(node)
    post = client["paths"]["/v1/threads/{name}/messages"]["post"]
    (header, act_as) = [p for p in post["parameters"] if p["in"] == "header"]
    assert act_as["name"] == "Act-As" and not act_as["required"]  # for an application's token
    assert header["name"] == "Idempotency-Key" and not header["required"]
    assert header["schema"]["pattern"] == r"^[\x21-\x7e]{1,255}$"
    assert post["responses"]["429"]["headers"]["Retry-After"]["required"] is True
    assert "Idempotent-Replayed" in post["responses"]["201"]["headers"]
    read = client["paths"]["/v1/threads/{name}/messages"]["get"]
    assert "429" not in read["responses"]
    assert [p["name"] for p in read["parameters"] if p["in"] == "header"] == ["Act-As"]


async def test_the_event_stream_is_documented_as_a_stream(node):
    _admin, client = await _documents(node)
    stream = client["paths"]["/v1/events/stream"]["get"]
    assert list(stream["responses"]["200"]["content"]) == ["text/event-stream"]
    assert {"410", "422"} <= set(stream["responses"])
    assert [p["name"] for p in stream["parameters"] if p["in"] == "header"] == ["Last-Event-ID", "Act-As"]


def test_errors_follow_from_what_an_endpoint_reads():
    async def handler(_request):
        raise AssertionError("not called")

    post = post_endpoint("/v1/threads/{name}/messages", handler, "post", body=PostMessage, response=MessageOut)
    assert error_statuses(post) == [400, 401, 403, 404, 413, 422, 429, 503]


async def test_renamed_fields_are_sent_under_both_names_and_the_old_ones_are_marked_deprecated(node):
    from node.feed.models import EventOut, EventPage
    from node.networks.models import SharedMessageOut, SharedMessagePage
    from node.workspace.models import AuditEntryOut, MessagePage

    admin, client = await _documents(node)
    served = {**admin["components"]["schemas"], **client["components"]["schemas"]}
    for model, new, old in ((MessagePage, "items", "messages"), (SharedMessagePage, "items", "messages"),
                            (EventPage, "items", "events"), (EventOut, "created_at", "at"),
                            (SharedMessageOut, "created_at", "origin_ts"), (AuditEntryOut, "created_at", "at")):
        schema = served.get(model.__name__) or model.model_json_schema(mode="serialization")
        properties = schema["properties"]
        assert not properties[new].get("deprecated"), model
        assert properties[old]["deprecated"] is True and f"`{new}`" in properties[old]["description"], model
    assert "MessagePage" in served and "AuditEntryOut" in served  # the documents say it, not only the models
    # What is sent has both, with the same value, and either is read.
    page = MessagePage(items=[MessageOut(id="1", thread="t", sender="agent:ops@acme.example", body="hi",
                                         created_at=5)], next_cursor=None).model_dump(mode="json")
    assert page["items"] == page["messages"] and page["items"][0]["created_at"] == 5
    assert MessagePage.model_validate({"messages": page["items"], "next_cursor": None}).items[0].body == "hi"
