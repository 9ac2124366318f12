//! The HTTP API: one module per resource, assembled into one router with its OpenAPI document.

pub mod health;
pub mod idempotency_keys;
pub mod metrics;
pub mod openapi;
pub mod order_batches;
pub mod orders;
pub mod problems;
pub mod template_versions;
pub mod templates;

use std::any::Any;

use axum::{
    Extension, Json, Router,
    http::{Method, StatusCode, Uri, header},
    middleware,
    response::{IntoResponse, Response},
};
use serde::{
    Deserialize, Deserializer, Serialize,
    de::{self, MapAccess, Visitor},
};
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::{
    IntoParams, PartialSchema, ToSchema,
    openapi::{ArrayBuilder, ObjectBuilder, OpenApi, Ref, RefOr, Schema, Type},
};
use utoipa_axum::router::OpenApiRouter;

use crate::http::{conditional::Tagged, detached, extract};
use crate::{
    db::{Page, PageRequest, orders::OrderFilter, template_versions::VersionPageRequest},
    domain::{
        id::parse_id,
        metadata::{Metadata, parse_metadata},
        order::{Order, OrderStatus},
        template::{Template, TemplateVersion},
        validation::Validator,
    },
    http::auth,
    http::body::BodyLimit,
    http::error::ApiError,
    http::rate_limit,
    idempotency,
    state::AppState,
};

/// Every route and the OpenAPI document that describes it. A `/v1` request is authenticated, counted against its
/// account's rate limit, a write with query parameters is rejected ([`extract::reject_query_on_writes`]), then, once
/// its body has arrived, runs to completion in a task of its own through the exactly-once layer, which runs keyed
/// POST and PATCH once and gives every request its transaction. A handler that panics answers 500 like any failing
/// handler (`answer_panics`), so the layers around it see an ordinary response: its transaction rolls back and a
/// key stores the 500.
pub fn router(state: &AppState) -> (Router<AppState>, OpenApi) {
    // An order batch takes its settings in the query string (a CSV body has no room for them); no other write does.
    let batches = request_path(batch_resources(), state, true)
        .route_layer(Extension(BodyLimit(state.config.batches.body_limit_bytes)));
    assemble(request_path(resources(), state, false).merge(batches))
}

/// The OpenAPI document alone, with no database or server behind it.
pub fn openapi() -> OpenApi {
    assemble(resources().merge(batch_resources())).1
}

/// What every `/v1` route passes through, outermost last: authentication, the account's rate limit, the rejection of
/// query parameters on writes (unless `writes_take_queries`), the detached task that reads the body, the
/// exactly-once layer.
fn request_path(
    routes: OpenApiRouter<AppState>,
    state: &AppState,
    writes_take_queries: bool,
) -> OpenApiRouter<AppState> {
    let routes = routes
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::layer::exactly_once,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            detached::run_to_completion,
        ));
    let routes = if writes_take_queries {
        routes
    } else {
        routes.route_layer(middleware::from_fn(extract::reject_query_on_writes))
    };
    routes
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            rate_limit::limit_account,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_account,
        ))
}

fn resources() -> OpenApiRouter<AppState> {
    templates::router()
        .merge(template_versions::router())
        .merge(orders::router())
        .merge(idempotency_keys::router())
        .layer(answer_panics())
}

/// Order batches take bodies up to `BATCH_BODY_LIMIT_BYTES`, set before anything reads the body.
fn batch_resources() -> OpenApiRouter<AppState> {
    order_batches::router().layer(answer_panics())
}

fn assemble(v1: OpenApiRouter<AppState>) -> (Router<AppState>, OpenApi) {
    let public = health::router()
        .merge(metrics::router())
        .merge(problems::router())
        .layer(answer_panics());
    let (router, mut openapi) = OpenApiRouter::with_openapi(openapi::openapi())
        .merge(v1)
        .merge(public)
        .split_for_parts();
    openapi::document_idempotency(&mut openapi);
    openapi::document_closed_request_objects(&mut openapi);
    openapi::document_conditional_requests(&mut openapi);
    openapi::document_transport_answers(&mut openapi);
    openapi::document_outcome_unknown(&mut openapi);
    openapi::document_rate_limits(&mut openapi);
    (router, openapi)
}

/// The one panic net: right around every handler, so that a panic is the handler's 500 and nothing else unwinds.
/// Layers hold no code that panics; a panic there is a bug that closes the connection.
fn answer_panics() -> CatchPanicLayer<fn(Box<dyn Any + Send>) -> Response> {
    CatchPanicLayer::custom(|_| ApiError::internal("the handler panicked").into_response())
}

/// For any path no route matches.
pub async fn route_not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::RouteNotFound(format!("{method} {}", uri.path()))
}

/// For a route that does not take the request's method.
pub async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
    }
}

/// A 201 answer: the new object, where it lives, and its `ETag`.
pub struct Created<T> {
    location: String,
    body: T,
}

impl<T> Created<T> {
    pub fn at(location: String, body: T) -> Self {
        Self { location, body }
    }
}

impl<T: Serialize + Tagged> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        let tag = self.body.entity_tag().header_value();
        (
            StatusCode::CREATED,
            [(header::LOCATION, self.location)],
            [(header::ETAG, tag)],
            Json(self.body),
        )
            .into_response()
    }
}

/// One page of a list, newest first; its schema is [`TemplateList`] or [`OrderList`].
#[derive(Debug, Serialize)]
pub struct List<T> {
    pub data: Vec<T>,
    pub has_more: bool,
}

impl<T> From<Page<T>> for List<T> {
    fn from(page: Page<T>) -> Self {
        Self {
            data: page.data,
            has_more: page.has_more,
        }
    }
}

/// The schema of a [`List`] of `T`, whose `data` items refer to `T`'s own schema. utoipa's derive would copy
/// `T`'s schema into each list instead, and generated clients would get a second class for the same object.
fn list_schema<T: ToSchema>() -> RefOr<Schema> {
    ObjectBuilder::new()
        .description(Some("One page of a list, newest first."))
        .property(
            "data",
            ArrayBuilder::new()
                .items(Ref::from_schema_name(T::name()))
                .description(Some("The objects of the page, newest first.")),
        )
        .required("data")
        .property(
            "has_more",
            ObjectBuilder::new().schema_type(Type::Boolean).description(Some(
                "Whether older objects follow; ask for them with `starting_after` set to the last `id` of `data`.",
            )),
        )
        .required("has_more")
        .into()
}

/// Declares the named schema of a list of one kind of object.
macro_rules! list_schema {
    ($(#[$doc:meta])* $name:ident of $item:ty) => {
        $(#[$doc])*
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                list_schema::<$item>()
            }
        }

        impl ToSchema for $name {
            fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
                schemas.push((<$item>::name().into_owned(), <$item>::schema()));
                <$item>::schemas(schemas);
            }
        }
    };
}

list_schema!(
    /// `TemplateList`: a page of templates.
    TemplateList of Template
);
list_schema!(
    /// `TemplateVersionList`: a page of a template's versions.
    TemplateVersionList of TemplateVersion
);
list_schema!(
    /// `OrderBatchList`: a page of order batches, newest first, without their rows.
    OrderBatchList of crate::domain::batch::OrderBatch
);
list_schema!(
    /// `RowResultList`: a page of an order batch's row results, in file order.
    RowResultList of crate::domain::batch::RowResult
);
list_schema!(
    /// `OrderList`: a page of orders.
    OrderList of Order
);

/// The default page size.
const DEFAULT_LIMIT: i64 = 20;
/// The largest page size.
const MAX_LIMIT: i64 = 100;

/// Which page of a list to return.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// How many objects to return, 1 to 100.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100, default = 20)]
    limit: Option<String>,
    /// The `id` of the last object of the previous page; the page starts after it.
    #[param(value_type = Option<Uuid>)]
    starting_after: Option<String>,
}

impl ListQuery {
    fn validate_in(self, v: &mut Validator) -> Option<PageRequest> {
        let limit = v.check("limit", parse_limit(self.limit.as_deref()));
        let starting_after = v.check(
            "starting_after",
            self.starting_after.as_deref().map(parse_id).transpose(),
        );
        Some(PageRequest {
            limit: limit?,
            starting_after: starting_after?,
        })
    }
}

impl extract::Validate for ListQuery {
    type Valid = PageRequest;

    fn validate(self) -> Result<PageRequest, ApiError> {
        let mut v = Validator::new();
        let page = self.validate_in(&mut v);
        Ok(v.finish(|| page)?)
    }
}

fn parse_limit(limit: Option<&str>) -> Result<i64, String> {
    let Some(limit) = limit else {
        return Ok(DEFAULT_LIMIT);
    };
    match limit.parse::<i64>() {
        Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
        _ => Err(format!("must be a whole number from 1 to {MAX_LIMIT}")),
    }
}

/// Which page of orders to return, optionally of one status only, or with some metadata.
///
/// Deserialized by hand: the metadata filter is a family of parameters, `metadata[key]=value` (OpenAPI's
/// `deepObject` style), and any other unknown parameter is rejected like an unknown body member.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListOrdersQuery {
    /// How many orders to return, 1 to 100.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100, default = 20)]
    limit: Option<String>,
    /// The `id` of the last order of the previous page; the page starts after it.
    #[param(value_type = Option<Uuid>)]
    starting_after: Option<String>,
    /// Only orders with this status.
    #[param(value_type = Option<OrderStatus>)]
    status: Option<String>,
    /// Documented in the operation, as a `deepObject` of the `Metadata` schema: `IntoParams` drops a
    /// parameter's style when it takes its schema from elsewhere.
    #[param(ignore)]
    metadata: Metadata,
}

const LIST_ORDERS_PARAMETERS: &[&str] = &["limit", "starting_after", "status", "metadata[<key>]"];

impl<'de> Deserialize<'de> for ListOrdersQuery {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Parameters;

        impl<'de> Visitor<'de> for Parameters {
            type Value = ListOrdersQuery;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("query parameters")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut query = ListOrdersQuery::default();
                while let Some(name) = map.next_key::<String>()? {
                    let value: String = map.next_value()?;
                    match name.as_str() {
                        "limit" => query.limit = Some(value),
                        "starting_after" => query.starting_after = Some(value),
                        "status" => query.status = Some(value),
                        _ => match metadata_key(&name) {
                            Some(key) => {
                                query.metadata.insert(key.to_owned(), value);
                            }
                            None => {
                                return Err(de::Error::unknown_field(
                                    &name,
                                    LIST_ORDERS_PARAMETERS,
                                ));
                            }
                        },
                    }
                }
                Ok(query)
            }
        }

        deserializer.deserialize_map(Parameters)
    }
}

/// The key of a `metadata[key]` parameter.
fn metadata_key(name: &str) -> Option<&str> {
    name.strip_prefix("metadata[")?.strip_suffix(']')
}

impl extract::Validate for ListOrdersQuery {
    type Valid = (OrderFilter, PageRequest);

    fn validate(self) -> Result<Self::Valid, ApiError> {
        let mut v = Validator::new();
        let page = ListQuery {
            limit: self.limit,
            starting_after: self.starting_after,
        }
        .validate_in(&mut v);
        let status = v.check(
            "status",
            self.status
                .map(|s| {
                    serde_json::from_value(serde_json::Value::String(s)).map_err(|_| {
                        "must be one of received, processing, sent, cancelled".to_owned()
                    })
                })
                .transpose(),
        );
        let metadata = parse_metadata(&mut v, self.metadata);
        Ok(v.finish(|| {
            Some((
                OrderFilter {
                    status: status?,
                    metadata: metadata?,
                },
                page?,
            ))
        })?)
    }
}

/// Which page of a template's versions to return.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListVersionsQuery {
    /// How many versions to return, 1 to 100.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100, default = 20)]
    limit: Option<String>,
    /// The `version` of the last version of the previous page; the page starts after it (with older versions).
    #[param(value_type = Option<i32>, minimum = 1)]
    starting_after: Option<String>,
}

impl extract::Validate for ListVersionsQuery {
    type Valid = VersionPageRequest;

    fn validate(self) -> Result<VersionPageRequest, ApiError> {
        let mut v = Validator::new();
        let limit = v.check("limit", parse_limit(self.limit.as_deref()));
        let starting_after = v.check(
            "starting_after",
            self.starting_after
                .as_deref()
                .map(parse_version)
                .transpose(),
        );
        Ok(v.finish(|| {
            Some(VersionPageRequest {
                limit: limit?,
                starting_after: starting_after?,
            })
        })?)
    }
}

/// A template version in a query or path: a whole number from 1.
pub fn parse_version(version: &str) -> Result<i32, String> {
    match version.parse::<i32>() {
        Ok(version) if version >= 1 => Ok(version),
        _ => Err("must be a template version: a whole number from 1".to_owned()),
    }
}
