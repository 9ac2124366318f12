//! The OpenAPI document's frame (title, security scheme, tags, reusable responses), the idempotency contract that
//! every POST and PATCH under `/v1` shares, and the rate limit every `/v1` operation shares; the routes add their
//! own paths.

use axum::http::Method;
use utoipa::{
    Modify, OpenApi,
    openapi::{
        self, Content, Ref, RefOr, Required, Schema,
        header::HeaderBuilder,
        path::{Operation, ParameterBuilder, ParameterIn, PathItem},
        response::ResponseBuilder,
        schema::{AdditionalProperties, ObjectBuilder, Type},
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};

use super::problems;
use crate::{
    domain::input::validation::FieldError,
    http::conditional::tagged_schemas,
    http::error::Problem,
    idempotency::{key::MAX_LENGTH, layer::is_keyed},
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "order-intake",
        description = "Submit print-and-mail orders and the templates they are printed from.\n\n\
            Every request under `/v1` needs `Authorization: Bearer <api_key>`. Every POST and PATCH accepts an \
            `Idempotency-Key`: a retried request runs once and gets its first answer back. Errors are \
            `application/problem+json` (RFC 9457); `GET` a problem's `type` for what it means.",
    ),
    // Only the server that serves the document: any other address written here would be right for one
    // `LISTEN_ADDR` and wrong for the rest.
    servers(
        (url = "/", description = "The server that serves this document (`GET /openapi.json`)."),
    ),
    modifiers(&BearerAuth),
    components(schemas(Problem, FieldError), responses(
        problems::BadRequest,
        problems::Unauthorized,
        problems::NotFound,
        problems::MethodNotAllowed,
        problems::RequestTimeout,
        problems::Conflict,
        problems::PreconditionFailed,
        problems::PayloadTooLarge,
        problems::UnsupportedMediaType,
        problems::UnprocessableEntity,
        problems::TooManyRequests,
        problems::InternalError,
        problems::ServiceUnavailable,
        problems::OutcomeUnknown,
    )),
    tags(
        (name = "templates", description = "HTML templates with `{{field}}` merge placeholders."),
        (name = "orders", description = "Mail pieces to print from a template for one recipient."),
        (name = "order_batches", description = "Files of orders (JSON or CSV), every row taken exactly once."),
        (name = "idempotency_keys", description = "What the server stored for an Idempotency-Key."),
        (name = "operations", description = "Health checks and metrics for operators and orchestrators."),
        (name = "problems", description = "What the `type` of an error response means."),
    )
)]
struct ApiDoc;

/// The document before the routes add their paths.
pub fn openapi() -> openapi::OpenApi {
    ApiDoc::openapi()
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key of your account, as `Authorization: Bearer <api_key>`.",
                    ))
                    .build(),
            ),
        );
    }
}

const KEY_DESCRIPTION: &str = "Makes the request exactly-once. 1 to 255 printable ASCII characters (0x20 to \
0x7E); a value in double quotes is read as an RFC 8941 string, whose quotes and backslash escapes do not count \
towards the 255 (so its header value may be up to 512 characters long). The first outcome of the request (its \
status, `Content-Type`, `Location` and body, including a 404, a 409 `order-not-modifiable`, a 422 \
`template-not-found` or `missing-merge-variables`, or a 500 from the endpoint) is stored with the key in the same \
transaction as the write and replayed, byte for byte and with `Idempotent-Replayed: true`, to every later request \
from your account with the same key and the same method, route, ids and body, for 24 hours (the retention the \
server had when it stored the key). The same key with a different request gets 422 `idempotency-key-reused`; \
while the first request still runs, a duplicate waits for it, or gets 409 `idempotency-key-in-use` after the wait \
timeout. Not stored, so they can be retried (corrected, where it applies) with the same key: requests rejected \
before they run (401, 400, 413, 415), every 422 `validation-failed`, and passing failures after which nothing was \
written (409 `resource-busy`, 503) or whose outcome is not known yet (504 `outcome-unknown`).";

/// A key as the server reads it: printable ASCII that neither starts nor ends with a space (HTTP trims those),
/// or an RFC 8941 string in double quotes.
const KEY_PATTERN: &str = r#"^(?:[\x21\x23-\x7E](?:[\x20-\x7E]{0,253}[\x21-\x7E])?|"(?:[\x20\x21\x23-\x5B\x5D-\x7E]|\\["\\]){1,255}")$"#;

/// The longest header value the server accepts: a key of `MAX_LENGTH` characters as an RFC 8941 string, every one
/// of them escaped (`\"` or `\\`), between its two quotes. The pattern holds the key itself to `MAX_LENGTH`.
const MAX_HEADER_LENGTH: usize = 2 + 2 * MAX_LENGTH;

const REPLAYED_DESCRIPTION: &str =
    "`true` when this is the stored answer of an earlier request with the same Idempotency-Key.";

/// Adds the `Idempotency-Key` header and the answers it brings to every operation under `/v1` whose method the
/// exactly-once layer keys, which every `/v1` request passes through.
pub fn document_idempotency(openapi: &mut openapi::OpenApi) {
    for (path, item) in openapi.paths.paths.iter_mut() {
        if !path.starts_with("/v1/") {
            continue;
        }
        for (method, operation) in operations(item) {
            if is_keyed(&method) {
                document_key(operation);
            }
        }
    }
}

/// Adds 504 `outcome-unknown` to every operation under `/v1`: any of them may outlive the request timeout once it
/// runs, and any that writes may lose its commit's acknowledgement.
pub fn document_outcome_unknown(openapi: &mut openapi::OpenApi) {
    add_to_every_v1_operation(openapi, "504", "OutcomeUnknown");
}

fn document_key(operation: &mut Operation) {
    let key = ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(KEY_DESCRIPTION))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(MAX_HEADER_LENGTH))
                .pattern(Some(KEY_PATTERN)),
        ))
        .build();
    operation
        .parameters
        .get_or_insert_with(Vec::new)
        .push(RefOr::T(key));

    let responses = &mut operation.responses.responses;
    for response in responses.values_mut() {
        if let RefOr::T(response) = response {
            response.headers.insert(
                "Idempotent-Replayed".to_owned(),
                RefOr::T(
                    HeaderBuilder::new()
                        .schema(Some(
                            ObjectBuilder::new()
                                .schema_type(Type::String)
                                .enum_values(Some(["true"])),
                        ))
                        .description(Some(REPLAYED_DESCRIPTION))
                        .build(),
                ),
            );
        }
    }
    for (status, component) in [
        ("400", "BadRequest"),
        ("409", "Conflict"),
        ("422", "UnprocessableEntity"),
    ] {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(component)));
    }
}

/// `additionalProperties: false` on every object schema that a request body refers to, directly or through its
/// members: a request object takes no members but its own. The request types cannot say so with serde's
/// `deny_unknown_fields`, from which utoipa would take it, because that stops at the first unknown member; they
/// collect them all instead (`domain::member::UnknownMembers`). Maps (merge variables) keep their own
/// `additionalProperties`.
pub fn document_closed_request_objects(openapi: &mut openapi::OpenApi) {
    let mut pending = Vec::new();
    for item in openapi.paths.paths.values_mut() {
        for (_, operation) in operations(item) {
            if let Some(RefOr::T(body)) = &operation.request_body {
                for content in body.content.values() {
                    if let RefOr::T(Content {
                        schema: Some(schema),
                        ..
                    }) = content
                    {
                        referred_schemas(schema, &mut pending);
                    }
                }
            }
        }
    }
    let Some(components) = openapi.components.as_mut() else {
        return;
    };
    let mut closed = Vec::new();
    while let Some(name) = pending.pop() {
        if closed.contains(&name) {
            continue;
        }
        if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(&name) {
            for property in object.properties.values() {
                referred_schemas(property, &mut pending);
            }
            if !object.properties.is_empty() && object.additional_properties.is_none() {
                object.additional_properties =
                    Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
        }
        closed.push(name);
    }
}

/// The names of the component schemas that `schema` refers to, at its top or as one of its alternatives.
fn referred_schemas(schema: &RefOr<Schema>, names: &mut Vec<String>) {
    match schema {
        RefOr::Ref(reference) => {
            if let Some(name) = reference.ref_location.strip_prefix("#/components/schemas/") {
                names.push(name.to_owned());
            }
        }
        RefOr::T(Schema::OneOf(one_of)) => {
            for item in &one_of.items {
                referred_schemas(item, names);
            }
        }
        RefOr::T(_) => {}
    }
}

/// `ETag` on every answer that carries one object, and the preconditions of the operations on one object:
/// `If-None-Match` (304) on GET, `If-Match` (412) on GET, PATCH and DELETE (RFC 9110, section 13).
pub fn document_conditional_requests(openapi: &mut openapi::OpenApi) {
    for (path, item) in openapi.paths.paths.iter_mut() {
        if !path.starts_with("/v1/") {
            continue;
        }
        // An object's path is one whose GET answers with a tagged object (an order batch, say, carries no tag).
        let one_object = item
            .get
            .as_ref()
            .and_then(|get| get.responses.responses.get("200"))
            .is_some_and(|response| matches!(response, RefOr::T(r) if carries_tagged_object(r)));
        for (_, operation) in operations(item) {
            for status in ["200", "201"] {
                if let Some(RefOr::T(response)) = operation.responses.responses.get_mut(status)
                    && carries_tagged_object(response)
                {
                    response
                        .headers
                        .insert("ETag".to_owned(), RefOr::T(etag_header()));
                }
            }
        }
        if !one_object {
            continue;
        }
        if let Some(get) = item.get.as_mut() {
            add_precondition(get, "If-None-Match", IF_NONE_MATCH_DESCRIPTION);
            get.responses.responses.insert(
                "304".to_owned(),
                RefOr::T(
                    ResponseBuilder::new()
                        .description(
                            "`If-None-Match` names the object's current `ETag`: the copy the client holds is \
                             current. No body.",
                        )
                        .header("ETag", etag_header())
                        .header("Vary", vary_header())
                        .build(),
                ),
            );
        }
        for operation in [item.get.as_mut(), item.patch.as_mut(), item.delete.as_mut()]
            .into_iter()
            .flatten()
        {
            add_precondition(operation, "If-Match", IF_MATCH_DESCRIPTION);
            operation.responses.responses.insert(
                "412".to_owned(),
                RefOr::Ref(Ref::from_response_name("PreconditionFailed")),
            );
            // A precondition that is not a list of entity tags (`invalid-precondition`).
            operation
                .responses
                .responses
                .entry("400".to_owned())
                .or_insert_with(|| RefOr::Ref(Ref::from_response_name("BadRequest")));
        }
    }
}

const ETAG_DESCRIPTION: &str = "The object's strong entity tag: its version, e.g. `\"3\"`, which every change \
    counts up (with `-gzip`, `-br` or `-zstd` appended when the body is compressed). Send it back in `If-Match` to \
    change the object only as you last saw it, or in `If-None-Match` to read it only when it changed.";
const IF_MATCH_DESCRIPTION: &str = "Apply the request only if the object's current `ETag` is one of these (strong \
    comparison; `*` for any; a tag in either coding's form); else 412 `precondition-failed`, with the current `ETag`, \
    and nothing is written. A 412 to a keyed request is stored for its key like any other answer. A value that is \
    not `*` or a list of entity tags is 400 `invalid-precondition`.";
const IF_NONE_MATCH_DESCRIPTION: &str = "Answer 304 without a body when the object's current `ETag`, in the form of \
    the representation this request gets (`-gzip`, `-br`, `-zstd` or none, by `Accept-Encoding`), is one of these \
    (weak comparison; `*` for any). A value that is not `*` or a list of entity tags is 400 \
    `invalid-precondition`.";

/// Whether the answer's body is one object of a kind that has an entity tag: one that [`tagged_schemas`] lists.
fn carries_tagged_object(response: &openapi::Response) -> bool {
    let tagged: Vec<_> = tagged_schemas()
        .into_iter()
        .map(|name| format!("#/components/schemas/{name}"))
        .collect();
    response.content.values().any(|content| {
        matches!(
            content,
            RefOr::T(Content { schema: Some(RefOr::Ref(reference)), .. })
                if tagged.contains(&reference.ref_location)
        )
    })
}

fn etag_header() -> openapi::header::Header {
    HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .description(Some(ETAG_DESCRIPTION))
        .build()
}

/// The `Vary` of a 304: the one its 200 would have had.
fn vary_header() -> openapi::header::Header {
    HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .description(Some("`accept-encoding`, as the 200 would have had."))
        .build()
}

fn add_precondition(operation: &mut Operation, name: &str, description: &str) {
    let parameter = ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build();
    operation
        .parameters
        .get_or_insert_with(Vec::new)
        .push(RefOr::T(parameter));
}

/// The answers any request can get, whatever its operation, from the layers in front of every route: 405 from the
/// router, 408 from the request timeout, and, from the HTTP/1.1 parser before the service sees the request, 414
/// for a request target over 65 534 bytes and 431 for a request head with more than 100 fields or too large for
/// the parser's buffer (hyper's limits).
const TRANSPORT_ANSWERS: [(&str, &str); 4] = [
    ("405", "MethodNotAllowed"),
    ("408", "RequestTimeout"),
    ("414", "UriTooLong"),
    ("431", "RequestHeaderFieldsTooLarge"),
];

/// Adds the answers of `TRANSPORT_ANSWERS` to every operation, and the two that are not problem documents to the
/// reusable responses.
pub fn document_transport_answers(openapi: &mut openapi::OpenApi) {
    let components = openapi.components.get_or_insert_with(Default::default);
    components.responses.insert(
        "UriTooLong".to_owned(),
        RefOr::T(
            ResponseBuilder::new()
                .description(
                    "The request target is longer than 65 534 bytes. The HTTP parser answers before the service sees \
                     the request: no body, and the connection is closed.",
                )
                .build(),
        ),
    );
    components.responses.insert(
        "RequestHeaderFieldsTooLarge".to_owned(),
        RefOr::T(
            ResponseBuilder::new()
                .description(
                    "The request head has more than 100 header fields, or does not fit the HTTP parser's \
                     buffer (408 KiB; a head that arrives in large reads may be somewhat larger). The parser \
                     answers before the service sees the request: no body, and the connection is closed.",
                )
                .build(),
        ),
    );
    for item in openapi.paths.paths.values_mut() {
        for (_, operation) in operations(item) {
            for (status, component) in TRANSPORT_ANSWERS {
                operation
                    .responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name(component)));
            }
        }
    }
}

/// Adds the reusable response `response` under `status` to every operation under `/v1` that does not document it.
fn add_to_every_v1_operation(openapi: &mut openapi::OpenApi, status: &str, response: &str) {
    for (path, item) in openapi.paths.paths.iter_mut() {
        if !path.starts_with("/v1/") {
            continue;
        }
        for (_, operation) in operations(item) {
            operation
                .responses
                .responses
                .entry(status.to_owned())
                .or_insert_with(|| RefOr::Ref(Ref::from_response_name(response)));
        }
    }
}

/// Every operation of a path, with its method.
fn operations(item: &mut PathItem) -> impl Iterator<Item = (Method, &mut Operation)> {
    [
        (Some(Method::GET), item.get.as_mut()),
        (Some(Method::PUT), item.put.as_mut()),
        (Some(Method::POST), item.post.as_mut()),
        (Some(Method::DELETE), item.delete.as_mut()),
        (Some(Method::OPTIONS), item.options.as_mut()),
        (Some(Method::HEAD), item.head.as_mut()),
        (Some(Method::PATCH), item.patch.as_mut()),
        (Some(Method::TRACE), item.trace.as_mut()),
        (Method::from_bytes(b"QUERY").ok(), item.query.as_mut()),
    ]
    .into_iter()
    .chain(
        item.additional_operations
            .iter_mut()
            .map(|(name, operation)| (Method::from_bytes(name.as_bytes()).ok(), Some(operation))),
    )
    .filter_map(|(method, operation)| method.zip(operation))
}

/// Adds the 429 of the per-account rate limit to every operation under `/v1`, which all pass through it (when the
/// server has a rate limit set: `RATE_LIMIT_REQUESTS_PER_SECOND`).
pub fn document_rate_limits(openapi: &mut openapi::OpenApi) {
    add_to_every_v1_operation(openapi, "429", "TooManyRequests");
}
