"""A client developer's first session, through the Python client generated from openapi.json only.

Run by .ci/client-check against a fresh server: ORDER_INTAKE_URL names it, ORDER_INTAKE_API_KEY is an API key of
a new account, and the generated package `order_intake_client` is on PYTHONPATH. Each step checks what the client
gets, typed as the document describes it; the script exits non-zero when a step fails.
"""

import os
import sys
import traceback
import uuid
from http import HTTPStatus

from order_intake_client import AuthenticatedClient
from order_intake_client.api.orders import create_order, get_order
from order_intake_client.api.templates import create_template
from order_intake_client.models import CreateOrder, CreateTemplate, Order, Problem, Template, TemplateFormat

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


STEPS = [
    create_a_template,
    create_a_keyed_order,
    replay_the_keyed_order,
    reuse_the_key_for_another_order,
    send_a_template_that_breaks_rules,
]

# Not yet part of the scenario, because the service does not do them yet (issue 15):
# - a body with wrong types, missing and unknown members gets one 422 listing every field (item 2);
# - a PATCH with a stale `If-Match` gets a 412 problem (item 7).
NOT_YET = [
    "a bad body with wrong types and missing members, every field listed in one 422 (issue 15, item 2)",
    "a conditional PATCH with a stale ETag gets 412 (issue 15, item 7)",
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
    for missing in NOT_YET:
        print(f"not yet: {missing}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
