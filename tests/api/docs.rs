//! The OpenAPI document: generated from the code, committed, served, and complete for every operation.

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::{TestApp, send};

const COMMITTED: &str = include_str!("../../openapi/openapi.json");

fn generated() -> String {
    order_intake::api::openapi().to_pretty_json().unwrap() + "\n"
}

#[test]
fn the_committed_spec_is_what_the_code_generates() {
    assert!(
        COMMITTED == generated(),
        "openapi/openapi.json is stale: run `make openapi` and commit it"
    );
}

#[test]
fn every_post_and_patch_documents_the_idempotency_contract() {
    let spec: Value = serde_json::from_str(&generated()).unwrap();
    let mut keyed = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            assert!(
                operation["operationId"].is_string(),
                "{method} {path} has an operationId"
            );
            let has_key = operation["parameters"].as_array().is_some_and(|ps| {
                ps.iter()
                    .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header")
            });
            let writes = matches!(method.as_str(), "post" | "patch");
            assert_eq!(
                has_key, writes,
                "{method} {path}: Idempotency-Key only on POST and PATCH"
            );
            if writes {
                keyed += 1;
                let key = operation["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p["name"] == "Idempotency-Key")
                    .unwrap();
                // The longest value the server accepts: 255 escaped characters in quotes (RFC 8941).
                assert_eq!(key["schema"]["maxLength"], 512);
                let responses = operation["responses"].as_object().unwrap();
                for status in ["400", "401", "409", "413", "415", "422", "500"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} documents {status}"
                    );
                }
                let success = responses
                    .iter()
                    .find(|(s, _)| s.starts_with('2'))
                    .unwrap()
                    .1;
                assert!(
                    success["headers"]["Idempotent-Replayed"].is_object(),
                    "{method} {path}"
                );
            }
            if path.starts_with("/v1/") {
                assert_eq!(
                    operation["security"][0]["api_key"],
                    serde_json::json!([]),
                    "{method} {path}"
                );
                assert!(
                    operation["responses"]["401"].is_object(),
                    "{method} {path} documents 401"
                );
            }
        }
    }
    assert_eq!(
        keyed, 6,
        "create and update, for orders and templates, the template preview, and create for order batches"
    );
    assert_eq!(
        spec["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    assert_eq!(spec["openapi"], "3.1.0");
}

#[test]
fn renders_are_documented_as_html() {
    let spec: Value = serde_json::from_str(&generated()).unwrap();
    for (path, method) in [
        ("/v1/orders/{id}/render", "get"),
        ("/v1/templates/{id}/render", "post"),
    ] {
        let content = spec["paths"][path][method]["responses"]["200"]["content"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} documents its 200"));
        assert_eq!(
            content.keys().collect::<Vec<_>>(),
            ["text/html"],
            "{method} {path}"
        );
    }
}

#[test]
fn the_metadata_filter_is_a_deep_object() {
    let spec: Value = serde_json::from_str(&generated()).unwrap();
    let parameters = spec["paths"]["/v1/orders"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let metadata = parameters
        .iter()
        .find(|p| p["name"] == "metadata")
        .expect("the metadata filter is documented");
    assert_eq!(metadata["in"], "query");
    assert_eq!(metadata["style"], "deepObject");
    assert_eq!(metadata["explode"], true);
    // The filter has the shape of the one `Metadata` schema that orders and templates refer to.
    assert_eq!(metadata["schema"]["$ref"], "#/components/schemas/Metadata");
    let schema = &spec["components"]["schemas"]["Metadata"];
    assert_eq!(schema["maxProperties"], 20);
    assert_eq!(schema["propertyNames"]["maxLength"], 40);
}

#[test]
fn error_responses_are_problem_documents() {
    let spec: Value = serde_json::from_str(&generated()).unwrap();
    for (name, response) in spec["components"]["responses"].as_object().unwrap() {
        if BARE_ANSWERS.contains(&name.as_str()) {
            assert!(response.get("content").is_none(), "{name} has no body");
            continue;
        }
        let content = response["content"].as_object().unwrap();
        assert_eq!(
            content.keys().collect::<Vec<_>>(),
            ["application/problem+json"],
            "{name}"
        );
        assert_eq!(
            content["application/problem+json"]["schema"]["$ref"], "#/components/schemas/Problem",
            "{name}"
        );
    }
}

/// The answers of the HTTP parser, which come before the service and carry no body.
const BARE_ANSWERS: [&str; 2] = ["UriTooLong", "RequestHeaderFieldsTooLarge"];

/// Every operation of the document, as (path, method, operation).
fn operations(spec: &Value) -> Vec<(String, String, Value)> {
    let mut operations = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            operations.push((path.clone(), method.clone(), operation.clone()));
        }
    }
    operations
}

#[test]
fn every_parameter_is_described_and_path_parameters_are_required() {
    let spec: Value = serde_json::from_str(&generated()).unwrap();
    let mut in_path = 0;
    for (path, method, operation) in operations(&spec) {
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            let name = &parameter["name"];
            assert!(
                parameter["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{method} {path}: parameter {name} has a description"
            );
            assert!(
                parameter["schema"].is_object(),
                "{method} {path}: {name} has a schema"
            );
            if parameter["in"] == "path" {
                in_path += 1;
                // OpenAPI 3.1, Parameter Object: "If the parameter location is "path", this field is REQUIRED and
                // its value MUST be true."
                assert_eq!(
                    parameter["required"], true,
                    "{method} {path}: path parameter {name}"
                );
                assert!(
                    path.contains(&format!("{{{}}}", name.as_str().unwrap())),
                    "{method} {path}: {name} is in the path template"
                );
            }
        }
    }
    assert_eq!(
        in_path, 15,
        "three per resource with an id, the problem slug, one on each render path and on the versions list, \
         two on a version, one on each order batch path, and the idempotency key"
    );
}

#[test]
fn every_operation_has_a_description_and_states_its_security() {
    let spec: Value = serde_json::from_str(&generated()).unwrap();
    let public = ["/healthz", "/readyz", "/metrics", "/problems/{slug}"];
    let mut seen_public = 0;
    for (path, method, operation) in operations(&spec) {
        for member in ["summary", "description"] {
            assert!(
                operation[member].as_str().is_some_and(|d| !d.is_empty()),
                "{method} {path} has a {member}"
            );
        }
        if public.contains(&path.as_str()) {
            seen_public += 1;
            assert_eq!(
                operation["security"],
                serde_json::json!([]),
                "{method} {path} needs no API key, and says so"
            );
        } else {
            assert!(path.starts_with("/v1/"), "{path} is public or under /v1");
        }
    }
    assert_eq!(seen_public, public.len());
    let servers = spec["servers"].as_array().expect("servers");
    assert_eq!(servers[0]["url"], "/", "the document's own server first");
}

#[test]
fn every_operation_documents_the_answers_of_the_layers_in_front_of_it() {
    let spec: Value = serde_json::from_str(&generated()).unwrap();
    for (path, method, operation) in operations(&spec) {
        for (status, component) in [
            ("405", "MethodNotAllowed"),
            ("408", "RequestTimeout"),
            ("414", "UriTooLong"),
            ("431", "RequestHeaderFieldsTooLarge"),
        ] {
            assert_eq!(
                operation["responses"][status]["$ref"],
                format!("#/components/responses/{component}"),
                "{method} {path} documents {status}"
            );
        }
    }
}

/// The answers documented as the HTTP parser's are what a real server sends: no body, the connection closed.
#[test]
fn etag_and_preconditions_are_documented_on_single_objects_only() {
    let spec: Value = serde_json::from_str(&generated()).unwrap();
    let mut tagged = Vec::new();
    for (path, method, operation) in operations(&spec) {
        for (status, response) in operation["responses"].as_object().unwrap() {
            if response["headers"]["ETag"].is_object() {
                tagged.push(format!("{method} {path} {status}"));
            }
        }
        let names: Vec<&str> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str())
            .collect();
        // Order batches are not changed once taken, and carry no tag.
        let one_object = path.starts_with("/v1/")
            && !path.starts_with("/v1/order_batches/")
            && (path.ends_with("/{id}") || path.ends_with("/{version}"));
        assert_eq!(
            names.contains(&"If-Match"),
            one_object,
            "{method} {path}: If-Match"
        );
        assert_eq!(
            operation["responses"]["412"].is_object(),
            one_object,
            "{method} {path}: 412"
        );
        assert_eq!(
            names.contains(&"If-None-Match"),
            one_object && method == "get",
            "{method} {path}: If-None-Match"
        );
    }
    tagged.sort();
    assert_eq!(
        tagged,
        [
            "delete /v1/orders/{id} 200",
            "get /v1/orders/{id} 200",
            "get /v1/orders/{id} 304",
            "get /v1/templates/{id} 200",
            "get /v1/templates/{id} 304",
            "get /v1/templates/{id}/versions/{version} 200",
            "get /v1/templates/{id}/versions/{version} 304",
            "patch /v1/orders/{id} 200",
            "patch /v1/templates/{id} 200",
            "post /v1/orders 201",
            "post /v1/templates 201",
        ]
    );
}

/// Every schema object of the document, with its JSON pointer.
fn schemas_in<'v>(value: &'v Value, pointer: String, found: &mut Vec<(String, &'v Value)>) {
    match value {
        Value::Object(members) => {
            found.push((pointer.clone(), value));
            for (name, member) in members {
                schemas_in(member, format!("{pointer}/{name}"), found);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                schemas_in(item, format!("{pointer}/{i}"), found);
            }
        }
        _ => {}
    }
}

#[test]
fn each_concept_has_one_named_schema_that_every_use_refers_to() {
    let spec: Value = serde_json::from_str(&generated()).unwrap();
    let mut found = Vec::new();
    schemas_in(&spec, String::new(), &mut found);

    // The country codes are listed once, in CountryCode.
    let country_enums: Vec<_> = found
        .iter()
        .filter(|(_, schema)| schema["enum"].as_array().is_some_and(|e| e.len() == 249))
        .map(|(pointer, _)| pointer.as_str())
        .collect();
    assert_eq!(country_enums, ["/components/schemas/CountryCode"]);

    // Merge variables, addresses and list items are references, never copies.
    let schemas = &spec["components"]["schemas"];
    for (schema, property, target) in [
        ("Address", "country", "CountryCode"),
        ("AddressInput", "country", "CountryCode"),
        ("Order", "merge_variables", "MergeVariables"),
        ("CreateOrder", "merge_variables", "MergeVariables"),
        ("UpdateOrder", "merge_variables", "MergeVariables"),
        ("Order", "recipient", "Address"),
        ("CreateOrder", "recipient", "AddressInput"),
        ("UpdateOrder", "recipient", "AddressInput"),
        ("RenderTemplate", "merge_variables", "MergeVariables"),
        ("Order", "metadata", "Metadata"),
        ("Template", "metadata", "Metadata"),
    ] {
        assert_eq!(
            schemas[schema]["properties"][property]["$ref"],
            format!("#/components/schemas/{target}"),
            "{schema}.{property}"
        );
    }
    // Members that may be `null` refer to the same schemas.
    for (schema, target) in [
        ("CreateOrder", "Metadata"),
        ("CreateTemplate", "Metadata"),
        ("UpdateOrder", "MetadataChanges"),
        ("UpdateTemplate", "MetadataChanges"),
    ] {
        assert_eq!(
            schemas[schema]["properties"]["metadata"]["oneOf"][0]["$ref"],
            format!("#/components/schemas/{target}"),
            "{schema}.metadata"
        );
    }
    for (list, item) in [
        ("TemplateList", "Template"),
        ("OrderList", "Order"),
        ("TemplateVersionList", "TemplateVersion"),
    ] {
        assert_eq!(
            schemas[list]["properties"]["data"]["items"]["$ref"],
            format!("#/components/schemas/{item}")
        );
    }
    // No other schema is an object with the members of an order or a template.
    let copies: Vec<_> = found
        .iter()
        .filter(|(pointer, schema)| {
            schema["properties"]["template_version"].is_object()
                && schema["properties"]["status"].is_object()
                && pointer != "/components/schemas/Order"
        })
        .map(|(pointer, _)| pointer.as_str())
        .collect();
    assert!(copies.is_empty(), "copies of Order: {copies:?}");
    let merge_variable_objects = found
        .iter()
        .filter(|(_, schema)| {
            schema["propertyNames"]["pattern"]
                .as_str()
                .is_some_and(|pattern| pattern.starts_with("^[A-Za-z_]"))
        })
        .count();
    assert_eq!(merge_variable_objects, 1, "one merge-variables schema");
    let metadata_objects = found
        .iter()
        .filter(|(_, schema)| {
            schema["maxProperties"] == 20 && schema["additionalProperties"]["type"] == "string"
        })
        .map(|(pointer, _)| pointer.as_str())
        .collect::<Vec<_>>();
    assert_eq!(metadata_objects, ["/components/schemas/Metadata"]);
}

#[sqlx::test]
async fn an_oversized_target_or_head_gets_the_documented_bare_answer(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let client = reqwest::Client::new();
    // The http crate that reqwest builds on refuses such a target itself, so it goes over a bare connection.
    let answer = raw_request(app.addr, &format!("/healthz?{}", "a".repeat(65_535))).await;
    assert!(
        answer.starts_with("HTTP/1.1 414 URI Too Long\r\n"),
        "{answer:.200}"
    );
    assert!(answer.ends_with("\r\n\r\n"), "no body: {answer:.200}");
    assert!(
        raw_request(app.addr, &format!("/healthz?{}", "a".repeat(65_000)))
            .await
            .starts_with("HTTP/1.1 200 OK\r\n")
    );

    let mut many = client.get(app.url("/healthz"));
    for n in 0..120 {
        many = many.header(format!("x-field-{n}"), "1");
    }
    let answer = send(many).await;
    answer.assert_status(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert!(answer.body.is_empty());

    let answer = send(client.put(app.url("/healthz"))).await;
    answer.assert_problem(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed");
    assert_eq!(answer.header("allow"), Some("GET,HEAD"));
}

/// Sends `GET target` on a new connection and returns everything the server writes until it closes it.
async fn raw_request(addr: std::net::SocketAddr, target: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

#[sqlx::test]
async fn the_service_serves_its_spec_and_swagger_ui(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let client = reqwest::Client::new();
    let spec = send(client.get(app.url("/openapi.json"))).await;
    spec.assert_status(StatusCode::OK);
    assert_eq!(
        spec.json(),
        serde_json::from_str::<Value>(&generated()).unwrap()
    );

    let page = send(client.get(app.url("/docs/"))).await;
    page.assert_status(StatusCode::OK);
    assert!(String::from_utf8_lossy(&page.body).contains("swagger-ui"));
    let initializer = send(client.get(app.url("/docs/swagger-initializer.js"))).await;
    assert!(String::from_utf8_lossy(&initializer.body).contains("/openapi.json"));
    let bundle = send(client.get(app.url("/docs/swagger-ui-bundle.js"))).await;
    bundle.assert_status(StatusCode::OK);
    assert!(
        bundle.body.len() > 100_000,
        "the Swagger UI assets are bundled in the binary"
    );
}

/// The members a description says a page is walked by: each `key` in "the last `key`", "the first `key`" and
/// "The `key` of".
fn keys_named(text: &str) -> Vec<&str> {
    let mut keys = Vec::new();
    for prefix in ["last `", "first `", "The `"] {
        for (at, _) in text.match_indices(prefix) {
            let rest = &text[at + prefix.len()..];
            keys.extend(rest.split('`').next());
        }
    }
    keys
}

/// A schema's type and format, which a cursor parameter and the member it names must share.
fn kind(schema: &Value) -> (Value, Value) {
    (schema["type"].clone(), schema["format"].clone())
}

#[test]
fn each_list_describes_its_own_order_cursors_and_key() {
    let spec: Value = serde_json::from_str(&generated()).unwrap();
    let schemas = &spec["components"]["schemas"];
    let named = |reference: &Value| {
        let name = reference.as_str().unwrap();
        schemas[name.trim_start_matches("#/components/schemas/")].clone()
    };
    let mut lists = Vec::new();
    for (path, method, operation) in operations(&spec) {
        let answer =
            &operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"];
        if !answer.is_string() || named(answer)["properties"]["has_more"].is_null() {
            continue;
        }
        let list = named(answer);
        let item = named(&list["properties"]["data"]["items"]["$ref"]);
        let parameters = operation["parameters"].as_array().unwrap();
        let parameter = |name: &str| {
            parameters
                .iter()
                .find(|p| p["name"] == name && p["in"] == "query")
                .unwrap_or_else(|| {
                    panic!("{method} {path} takes `{name}`, which a description names")
                })
        };
        let mut texts = vec![
            list["description"].clone(),
            list["properties"]["data"]["description"].clone(),
            list["properties"]["has_more"]["description"].clone(),
            operation["description"].clone(),
        ];
        texts.extend(parameters.iter().map(|p| p["description"].clone()));
        for text in texts.iter().filter_map(Value::as_str) {
            for cursor in ["starting_after", "ending_before"] {
                if text.contains(&format!("`{cursor}`")) {
                    let key_kind = kind(&parameter(cursor)["schema"]);
                    for key in keys_named(text) {
                        assert_eq!(
                            kind(&item["properties"][key]),
                            key_kind,
                            "{method} {path}: `{key}`, which {text:?} names, is what `{cursor}` takes"
                        );
                    }
                }
            }
        }
        // The order the list's schema states is the one its operation states.
        let order = list["description"]
            .as_str()
            .unwrap()
            .rsplit(", ")
            .next()
            .unwrap();
        let order = order.trim_end_matches('.');
        assert!(
            operation["description"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains(order),
            "{method} {path} lists {order}, as its schema says"
        );
        for cursor in ["limit", "starting_after", "ending_before"] {
            parameter(cursor);
        }
        lists.push(path);
    }
    lists.sort();
    assert_eq!(
        lists,
        [
            "/v1/order_batches",
            "/v1/order_batches/{id}/rows",
            "/v1/orders",
            "/v1/templates",
            "/v1/templates/{id}/versions"
        ]
    );
}

#[test]
fn the_document_names_no_server_but_its_own() {
    let spec: Value = serde_json::from_str(&generated()).unwrap();
    assert_eq!(
        spec["servers"],
        serde_json::json!([{"url": "/", "description": "The server that serves this document (`GET /openapi.json`)."}]),
        "an address of its own would be wrong for every other LISTEN_ADDR"
    );
}
