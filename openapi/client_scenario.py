"""A client developer's first session, through the Python client generated from openapi.json only.

Run by .ci/client-check against a fresh server: ORDER_INTAKE_URL names it, ORDER_INTAKE_API_KEY is an API key of
a new account, and the generated package `order_intake_client` is on PYTHONPATH. Each step checks what the client
gets, typed as the document describes it; the script exits non-zero when a step fails.
"""

import datetime
import os
import sys
import traceback
import uuid
from http import HTTPStatus

from order_intake_client import AuthenticatedClient
from order_intake_client.api.orders import create_order, get_order
from order_intake_client.api.templates import create_template, get_template, update_template
from order_intake_client.models import (
    AddressInput,
    CountryCode,
    CreateOrder,
    CreateTemplate,
    MergeVariables,
    Order,
    Problem,
    Template,
    TemplateFormat,
    UpdateTemplate,
)

client = AuthenticatedClient(
    base_url=os.environ["ORDER_INTAKE_URL"],
    token=os.environ["ORDER_INTAKE_API_KEY"],
    raise_on_unexpected_status=True,
)
state = {}


def order_body(first_name):
    # from_dict builds the nested typed members (address, country, merge variables) from plain JSON.
    return CreateOrder.from_dict(
        {
            "template_id": str(state["template"].id),
            "recipient": {
                "name": "Anna de Vries",
                "street": "Keizersgracht",
                "house_number": "123A",
                "postal_code": "1015 CJ",
                "city": "Amsterdam",
                "country": "NL",
            },
            "merge_variables": {"first_name": first_name},
        }
    )


def expect(condition, what):
    if not condition:
        raise AssertionError(what)


def create_a_template():
    body = CreateTemplate(
        name="Welcome postcard", format_=TemplateFormat.POSTCARD_A6, content="<p>Hello {{first_name}}!</p>"
    )
    response = create_template.sync_detailed(client=client, body=body)
    expect(response.status_code == HTTPStatus.CREATED, f"201, got {response.status_code}")
    template = response.parsed
    expect(isinstance(template, Template), f"a Template, got {template!r}")
    expect(template.merge_fields == ["first_name"], f"merge_fields, got {template.merge_fields}")
    expect(template.version == 1, f"version 1, got {template.version}")
    expect(response.headers["location"] == f"/v1/templates/{template.id}", "Location names the template")
    state["template"] = template


def create_a_keyed_order():
    state["key"] = f"client-check-{uuid.uuid4()}"
    response = create_order.sync_detailed(client=client, body=order_body("Anna"), idempotency_key=state["key"])
    expect(response.status_code == HTTPStatus.CREATED, f"201, got {response.status_code}")
    order = response.parsed
    expect(isinstance(order, Order), f"an Order, got {order!r}")
    expect(order.template_version == 1, f"template_version 1, got {order.template_version}")
    expect("idempotent-replayed" not in response.headers, "the first answer is not a replay")
    state["order"] = order
    state["order_bytes"] = response.content


def replay_the_keyed_order():
    response = create_order.sync_detailed(client=client, body=order_body("Anna"), idempotency_key=state["key"])
    expect(response.status_code == HTTPStatus.CREATED, f"201, got {response.status_code}")
    expect(response.headers.get("idempotent-replayed") == "true", "Idempotent-Replayed: true")
    expect(response.parsed.id == state["order"].id, f"the same order, got {response.parsed.id}")
    expect(response.content == state["order_bytes"], "the first answer, byte for byte")
    again = get_order.sync(client=client, id=state["order"].id)
    expect(isinstance(again, Order) and again.id == state["order"].id, "the order can be read")


def reuse_the_key_for_another_order():
    response = create_order.sync_detailed(client=client, body=order_body("Bob"), idempotency_key=state["key"])
    expect(response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY, f"422, got {response.status_code}")
    problem = response.parsed
    expect(isinstance(problem, Problem), f"a Problem, got {problem!r}")
    expect(problem.type_ == "/problems/idempotency-key-reused", f"idempotency-key-reused, got {problem.type_}")
    expect(problem.status == 422, f"status 422 in the body, got {problem.status}")


def send_a_template_that_breaks_rules():
    body = CreateTemplate(name=" ", format_=TemplateFormat.LETTER_A4, content="<p>Hello {{first name}}</p>")
    response = create_template.sync_detailed(client=client, body=body)
    expect(response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY, f"422, got {response.status_code}")
    problem = response.parsed
    expect(isinstance(problem, Problem), f"a Problem, got {problem!r}")
    expect(problem.type_ == "/problems/validation-failed", f"validation-failed, got {problem.type_}")
    fields = sorted(error.field for error in problem.errors)
    expect(fields == ["content", "name"], f"errors name both broken fields, got {fields}")


def send_an_order_with_several_problems():
    # The typed model is built with values of the wrong type where Python lets it (a number for a text): the body
    # then has wrong types and broken rules, and one answer must name them all, in the order of the body.
    recipient = AddressInput(
        name="",
        street="Keizersgracht",
        house_number=123,
        postal_code="1" * 21,
        city="Amsterdam",
        country=CountryCode.NL,
    )
    body = CreateOrder(
        template_id=state["template"].id,
        recipient=recipient,
        merge_variables=MergeVariables.from_dict({"first_name": "Anna"}),
        send_date=datetime.date(2020, 1, 1),
    )
    response = create_order.sync_detailed(client=client, body=body)
    expect(response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY, f"422, got {response.status_code}")
    problem = response.parsed
    expect(isinstance(problem, Problem), f"a Problem, got {problem!r}")
    expect(problem.type_ == "/problems/validation-failed", f"validation-failed, got {problem.type_}")
    fields = [error.field for error in problem.errors]
    expected = ["recipient.name", "recipient.house_number", "recipient.postal_code", "send_date"]
    expect(fields == expected, f"every problem in one answer, in body order: {expected}, got {fields}")


def change_a_template_only_as_last_seen():
    template_id = state["template"].id
    read = get_template.sync_detailed(template_id, client=client)
    expect(read.status_code == HTTPStatus.OK, f"200, got {read.status_code}")
    seen = read.headers["etag"]
    # httpx asks for gzip, so the tag carries the coding: "1-gzip" names the gzip body of version 1.
    expect(
        seen.strip('"').split("-")[0] == str(read.parsed.version), f"the ETag names the version, got {seen}"
    )
    unchanged = get_template.sync_detailed(template_id, client=client, if_none_match=seen)
    expect(unchanged.status_code == HTTPStatus.NOT_MODIFIED, f"304, got {unchanged.status_code}")

    first = update_template.sync_detailed(
        template_id, client=client, body=UpdateTemplate(name="Welcome postcard (winter)"), if_match=seen
    )
    expect(first.status_code == HTTPStatus.OK, f"200, got {first.status_code}")
    expect(first.headers["etag"] != seen, "a change gives a new ETag")

    # A second writer still holding the old ETag is refused instead of overwriting the first change.
    stale = update_template.sync_detailed(
        template_id, client=client, body=UpdateTemplate(name="Lost update"), if_match=seen
    )
    expect(stale.status_code == HTTPStatus.PRECONDITION_FAILED, f"412, got {stale.status_code}")
    problem = stale.parsed
    expect(isinstance(problem, Problem), f"a Problem, got {problem!r}")
    expect(problem.type_ == "/problems/precondition-failed", f"precondition-failed, got {problem.type_}")
    now = get_template.sync(template_id, client=client)
    expect(now.name == "Welcome postcard (winter)", f"the first change stands, got {now.name!r}")


STEPS = [
    create_a_template,
    create_a_keyed_order,
    replay_the_keyed_order,
    reuse_the_key_for_another_order,
    send_a_template_that_breaks_rules,
    send_an_order_with_several_problems,
    change_a_template_only_as_last_seen,
]


def main():
    passed = failed = 0
    for step in STEPS:
        name = step.__name__.replace("_", " ")
        try:
            step()
        except Exception:  # noqa: BLE001 - every failure of a step is reported, and the later steps still run
            failed += 1
            print(f"FAILED {name}", file=sys.stderr)
            traceback.print_exc()
            if step in (create_a_template, create_a_keyed_order):
                break
        else:
            passed += 1
            print(f"ok     {name}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
