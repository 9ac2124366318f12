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

use axum::{
    Json, Router,
    http::{Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use serde::{
    Deserialize, Deserializer, Serialize,
    de::{self, MapAccess, Visitor},
};
use utoipa::{
    IntoParams, PartialSchema, ToSchema,
    openapi::{ArrayBuilder, ObjectBuilder, OpenApi, Ref, RefOr, Schema, Type},
};
use utoipa_axum::router::OpenApiRouter;

use crate::http::{conditional::Tagged, extract};
use crate::{
    db::{Page, PageRequest, orders::OrderFilter, template_versions::VersionPageRequest},
    domain::{
        id::parse_id,
        metadata::{Metadata, parse_metadata},
        order::{Order, OrderStatus},
        template::{Template, TemplateVersion},
        validation::Validator,
    },
    http::error::ApiError,
    state::AppState,
};

/// The `/v1` resources that take JSON bodies within `REQUEST_BODY_LIMIT_BYTES`; `server::stack` puts the request
/// path around them.
pub fn resources() -> OpenApiRouter<AppState> {
    templates::router()
        .merge(template_versions::router())
        .merge(orders::router())
        .merge(idempotency_keys::router())
}

/// The `/v1` resources that take files: order batches, with settings in the query and a larger body limit.
pub fn batch_resources() -> OpenApiRouter<AppState> {
    order_batches::router()
}

/// The routes outside `/v1`: health, metrics and the problem types' descriptions, with no authentication.
pub fn public() -> OpenApiRouter<AppState> {
    health::router()
        .merge(metrics::router())
        .merge(problems::router())
}

/// The routes and their OpenAPI document, with what the layers add to every operation written into it.
pub fn document(routes: OpenApiRouter<AppState>) -> (Router<AppState>, OpenApi) {
    let (router, mut openapi) = OpenApiRouter::with_openapi(openapi::openapi())
        .merge(routes)
        .split_for_parts();
    openapi::document_idempotency(&mut openapi);
    openapi::document_closed_request_objects(&mut openapi);
    openapi::document_conditional_requests(&mut openapi);
    openapi::document_transport_answers(&mut openapi);
    openapi::document_outcome_unknown(&mut openapi);
    openapi::document_rate_limits(&mut openapi);
    (router, openapi)
}

/// The OpenAPI document alone, with no database or server behind it.
pub fn openapi() -> OpenApi {
    document(resources().merge(batch_resources()).merge(public())).1
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
