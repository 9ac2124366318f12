//! `/v1/orders`: take, list, read, change and cancel orders.

use axum::{
    Extension,
    extract::State,
    response::{Html, IntoResponse, Response},
};
use serde::Deserialize;
use sqlx::PgPool;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    list::{Filter, List, ListQuery, OrderList},
    problems,
};
use crate::{
    db::{self, orders::OrderFilter},
    domain::{
        address::AddressInput,
        input::id::parse_id,
        input::member::{Member, UnknownMembers},
        input::patch::Patch,
        input::validation::Validator,
        merge::{MergeVariables, missing_merge_variables, parse_merge_variables},
        metadata::{Metadata, MetadataChanges, parse_metadata, parse_metadata_changes},
        order::{
            NewOrder, Order, OrderChanges, OrderStatus, parse_send_date, parse_template_version,
            today,
        },
        schemas,
    },
    http::auth::Account,
    http::conditional::{Current, Preconditions, Tagged},
    http::error::ApiError,
    http::extract::{PathId, Resource, ValidJson, ValidQuery, Validate},
    http::response::Created,
    idempotency::tx::{SingleStatement, Tx},
    metrics::OrdersCreated,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update, cancel))
        .routes(routes!(render))
}

impl Resource for Order {
    const NAME: &'static str = "order";
}

/// A new order.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "template_id": "019ac9f0-7c1e-7a4b-9d0e-2f1c3b4a5d6e",
    "recipient": {"name": "Anna de Vries", "street": "Keizersgracht", "house_number": "123A",
                  "postal_code": "1015 CJ", "city": "Amsterdam", "country": "NL"},
    "merge_variables": {"first_name": "Anna", "city": "Amsterdam"},
    "send_date": "2026-12-01",
    "metadata": {"customer_id": "4711"}
}))]
pub struct CreateOrder {
    /// A template of your account.
    #[serde(default)]
    #[schema(schema_with = schemas::id, required = true)]
    template_id: Member<String>,
    #[serde(default)]
    #[schema(value_type = AddressInput, required = true)]
    recipient: Member<AddressInput>,
    #[serde(default)]
    #[schema(value_type = Option<AddressInput>)]
    sender: Member<AddressInput>,
    /// A value for every merge field of the template; more are allowed.
    #[serde(default)]
    #[schema(value_type = schemas::MergeVariablesSchema)]
    merge_variables: Member<MergeVariables>,
    /// `YYYY-MM-DD`, today (UTC) or later; leave out (or `null`) to send as soon as possible.
    #[serde(default)]
    #[schema(schema_with = schemas::optional_date)]
    send_date: Member<String>,
    /// Your own key/value pairs; `{}` when left out or `null`.
    #[serde(default)]
    #[schema(value_type = Option<schemas::MetadataSchema>)]
    metadata: Member<Metadata>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: UnknownMembers,
}

impl Validate for CreateOrder {
    type Valid = NewOrder;

    fn validate(self) -> Result<NewOrder, ApiError> {
        let mut v = Validator::new();
        v.unknown::<Self>(self.unknown);
        let template_id = v.required_with("template_id", self.template_id, |id| parse_id(&id));
        let recipient = v
            .required("recipient", self.recipient)
            .and_then(|recipient| v.nested("recipient", |v| recipient.validate(v)));
        let sender = match v.optional("sender", self.sender) {
            None => None,
            Some(None) => Some(None),
            Some(Some(sender)) => v.nested("sender", |v| sender.validate(v)).map(Some),
        };
        let merge_variables = v
            .optional_with(
                "merge_variables",
                self.merge_variables,
                parse_merge_variables,
            )
            .map(Option::unwrap_or_default);
        let taken_at = OffsetDateTime::now_utc();
        let send_date = v.optional_with("send_date", self.send_date, |date| {
            parse_send_date(&date, taken_at.date())
        });
        let metadata = v
            .optional("metadata", self.metadata)
            .and_then(|metadata| parse_metadata(&mut v, metadata.unwrap_or_default()));
        Ok(v.finish(|| {
            Some(NewOrder {
                template_id: template_id?,
                recipient: recipient?,
                sender: sender?,
                merge_variables: merge_variables?,
                send_date: send_date?,
                metadata: metadata?,
                taken_at,
            })
        })?)
    }
}

/// Changes to an order; members left out stay as they are, `null` removes `sender` or `send_date`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"send_date": "2026-12-24", "sender": null}))]
pub struct UpdateOrder {
    /// Another existing version of the order's template to print; the merge variables must cover its merge
    /// fields.
    #[serde(default)]
    #[schema(value_type = i32, minimum = 1)]
    template_version: Member<i64>,
    #[serde(default)]
    #[schema(value_type = AddressInput)]
    recipient: Member<AddressInput>,
    /// `null` removes the sender.
    #[serde(default)]
    #[schema(value_type = Option<AddressInput>)]
    sender: Member<AddressInput>,
    /// Replaces all merge variables; they must cover the template's merge fields.
    #[serde(default)]
    #[schema(value_type = schemas::MergeVariablesSchema)]
    merge_variables: Member<MergeVariables>,
    /// `YYYY-MM-DD`, today (UTC) or later; `null` removes the send date.
    #[serde(default)]
    #[schema(schema_with = schemas::optional_date)]
    send_date: Member<String>,
    /// Merged into the order's metadata: a value sets its key, `null` removes it; `null` removes every key.
    #[serde(default)]
    #[schema(value_type = Option<schemas::MetadataChangesSchema>)]
    metadata: Member<MetadataChanges>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: UnknownMembers,
}

impl Validate for UpdateOrder {
    type Valid = OrderChanges;

    fn validate(self) -> Result<OrderChanges, ApiError> {
        let mut v = Validator::new();
        v.unknown::<Self>(self.unknown);
        let template_version = v.change_with(
            "template_version",
            self.template_version,
            parse_template_version,
        );
        let recipient = match v.change("recipient", self.recipient) {
            None => None,
            Some(None) => Some(None),
            Some(Some(recipient)) => v.nested("recipient", |v| recipient.validate(v)).map(Some),
        };
        let sender = match v.patch("sender", self.sender) {
            None => None,
            Some(Patch::Set(sender)) => v.nested("sender", |v| sender.validate(v)).map(Patch::Set),
            Some(Patch::Unchanged) => Some(Patch::Unchanged),
            Some(Patch::Clear) => Some(Patch::Clear),
        };
        let merge_variables = v.change_with(
            "merge_variables",
            self.merge_variables,
            parse_merge_variables,
        );
        let send_date = match v.patch("send_date", self.send_date) {
            None => None,
            Some(Patch::Set(date)) => v
                .check("send_date", parse_send_date(&date, today()))
                .map(Patch::Set),
            Some(Patch::Unchanged) => Some(Patch::Unchanged),
            Some(Patch::Clear) => Some(Patch::Clear),
        };
        let metadata = v
            .patch("metadata", self.metadata)
            .and_then(|changes| parse_metadata_changes(&mut v, changes));
        Ok(v.finish(|| {
            Some(OrderChanges {
                template_version: template_version?,
                recipient: recipient?,
                sender: sender?,
                merge_variables: merge_variables?,
                send_date: send_date?,
                metadata: metadata?,
            })
        })?)
    }
}

/// What a list of orders is filtered by: one status, one template, some metadata.
///
/// The metadata filter is a family of parameters, `metadata[key]=value` (OpenAPI's `deepObject` style).
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderFilterQuery {
    /// Only orders with this status.
    #[param(value_type = Option<OrderStatus>)]
    status: Option<String>,
    /// Only orders printed from this template (any of its versions).
    #[param(value_type = Option<Uuid>)]
    template_id: Option<String>,
    /// Documented in the operation, as a `deepObject` of the `Metadata` schema: `IntoParams` drops a
    /// parameter's style when it takes its schema from elsewhere.
    #[param(ignore)]
    metadata: Metadata,
}

impl Filter for OrderFilterQuery {
    type Valid = OrderFilter;
    const PARAMETERS: &'static [&'static str] = &["status", "template_id", "metadata[<key>]"];

    fn take(&mut self, name: &str, value: String) -> bool {
        if name == "status" {
            self.status = Some(value);
        } else if name == "template_id" {
            self.template_id = Some(value);
        } else if let Some(key) = metadata_key(name) {
            self.metadata.insert(key.to_owned(), value);
        } else {
            return false;
        }
        true
    }

    fn validate_in(self, v: &mut Validator) -> Option<OrderFilter> {
        let status = v.check(
            "status",
            self.status.as_deref().map(OrderStatus::parse).transpose(),
        );
        let template_id = v.check(
            "template_id",
            self.template_id.as_deref().map(parse_id).transpose(),
        );
        let metadata = parse_metadata(v, self.metadata);
        Some(OrderFilter {
            status: status?,
            template_id: template_id?,
            metadata: metadata?,
        })
    }
}

/// The key of a `metadata[key]` parameter.
fn metadata_key(name: &str) -> Option<&str> {
    name.strip_prefix("metadata[")?.strip_suffix(']')
}

/// Create an order
///
/// The template must belong to your account and `merge_variables` must supply each of its `merge_fields`.
/// The order is taken against the template's latest version, which it records as `template_version` and prints,
/// whatever changes the template later.
#[utoipa::path(
    post,
    path = "/v1/orders",
    operation_id = "createOrder",
    tag = "orders",
    request_body = CreateOrder,
    responses(
        (status = 201, description = "The order was taken.", body = Order,
         headers(("Location" = String, description = "The order's URL."))),
        (status = 400, response = problems::BadRequest),
        (status = 401, response = problems::Unauthorized),
        (status = 413, response = problems::PayloadTooLarge),
        (status = 415, response = problems::UnsupportedMediaType),
        (status = 422, response = problems::UnprocessableEntity),
        (status = 500, response = problems::InternalError),
        (status = 503, response = problems::ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub async fn create(
    account: Account,
    mut statements: SingleStatement,
    ValidJson(new): ValidJson<CreateOrder>,
) -> Result<(Extension<OrdersCreated>, Created<Order>), ApiError> {
    let created = |order: Order| {
        (
            Extension(OrdersCreated(1)),
            Created::at(order.location(), order),
        )
    };
    let written = statements
        .write(async |conn| db::orders::insert_at_latest_version(conn, account.id, &new).await)
        .await?;
    if let Some(order) = written {
        return Ok(created(order));
    }
    // Nothing was written: say why, from the latest version as it is now.
    let version = statements
        .read(async |conn| {
            db::template_versions::find_for_order(conn, account.id, new.template_id, None).await
        })
        .await?;
    let template_version = check_order(&new, version.as_ref())?;
    // A new version that these variables cover came in between the two statements: take the order against it.
    let order = statements
        .write(async |conn| db::orders::insert(conn, account.id, template_version, &new).await)
        .await?
        .ok_or(ApiError::TemplateNotFound {
            id: new.template_id,
        })?;
    Ok(created(order))
}

/// Checks an order against the latest version of its template (`None`: there is no such template) and gives the
/// version it is taken at; the one rule of `POST /v1/orders`, of a batch row and of a batch's dry run.
pub fn check_order(
    order: &NewOrder,
    latest: Option<&db::template_versions::VersionForOrder>,
) -> Result<i32, ApiError> {
    let version = latest.ok_or(ApiError::TemplateNotFound {
        id: order.template_id,
    })?;
    let missing = missing_merge_variables(&version.merge_fields, &order.merge_variables);
    if !missing.is_empty() {
        return Err(ApiError::MissingMergeVariables { missing });
    }
    Ok(version.version)
}

/// List orders
///
/// Newest first, a page at a time: pass the last `id` of a page as `starting_after` to get the next, or the first
/// `id` as `ending_before` to get the one before. Filter by `status`, `template_id`, the time of creation
/// (`created[gte]`, `created[lt]`), and by metadata with `metadata[key]=value` (several pairs must all match).
#[utoipa::path(
    get,
    path = "/v1/orders",
    operation_id = "listOrders",
    tag = "orders",
    params(
        ListQuery<Order, OrderFilterQuery>,
        ("metadata" = Option<schemas::MetadataSchema>, Query, style = DeepObject, explode,
         description = "Only orders whose metadata has every one of these key/value pairs, as \
                        `metadata[customer_id]=4711`."),
    ),
    responses(
        (status = 200, description = "A page of orders.", body = OrderList),
        (status = 401, response = problems::Unauthorized),
        (status = 422, response = problems::UnprocessableEntity),
        (status = 500, response = problems::InternalError),
        (status = 503, response = problems::ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    State(pool): State<PgPool>,
    account: Account,
    ValidQuery(page): ValidQuery<ListQuery<Order, OrderFilterQuery>>,
) -> Result<List<Order>, ApiError> {
    Ok(db::orders::list(&pool, account.id, &page).await?.into())
}

/// Retrieve an order
///
/// The order as it is now, with its status; another account's order is not found.
#[utoipa::path(
    get,
    path = "/v1/orders/{id}",
    operation_id = "getOrder",
    tag = "orders",
    params(("id" = Uuid, Path, description = "The order's id.")),
    responses(
        (status = 200, description = "The order.", body = Order),
        (status = 401, response = problems::Unauthorized),
        (status = 404, response = problems::NotFound),
        (status = 500, response = problems::InternalError),
        (status = 503, response = problems::ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub async fn get(
    State(pool): State<PgPool>,
    account: Account,
    PathId(id, ..): PathId<Order>,
    preconditions: Preconditions,
) -> Result<Response, ApiError> {
    let order = db::orders::find(&pool, account.id, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    if let Some(not_modified) = preconditions.check_read(order.entity_tag())? {
        return Ok(not_modified);
    }
    Ok(Current(order).into_response())
}

/// Update an order
///
/// Only while the order is `received`. `template_version` re-pins the order to another version of its template;
/// the merge variables (replaced or not) must cover the merge fields of the version the order then prints.
/// `metadata` is merged in (a `null` value removes its key, `"metadata": null` removes all).
#[utoipa::path(
    patch,
    path = "/v1/orders/{id}",
    operation_id = "updateOrder",
    tag = "orders",
    params(("id" = Uuid, Path, description = "The order's id.")),
    request_body = UpdateOrder,
    responses(
        (status = 200, description = "The order as it is now.", body = Order),
        (status = 400, response = problems::BadRequest),
        (status = 401, response = problems::Unauthorized),
        (status = 404, response = problems::NotFound),
        (status = 409, response = problems::Conflict),
        (status = 413, response = problems::PayloadTooLarge),
        (status = 415, response = problems::UnsupportedMediaType),
        (status = 422, response = problems::UnprocessableEntity),
        (status = 500, response = problems::InternalError),
        (status = 503, response = problems::ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub async fn update(
    account: Account,
    PathId(id, ..): PathId<Order>,
    preconditions: Preconditions,
    mut tx: Tx,
    ValidJson(changes): ValidJson<UpdateOrder>,
) -> Result<Current<Order>, ApiError> {
    let conn = tx.conn().await?;
    let current = db::orders::find_for_update(conn, account.id, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    preconditions.check_change(current.entity_tag())?;
    if current.status != OrderStatus::Received {
        return Err(ApiError::OrderNotModifiable {
            id,
            status: current.status.as_str().to_owned(),
        });
    }
    let Some(next) = changes.apply_to(&current)? else {
        return Ok(Current(current));
    };
    if next.changes_merge_of(&current) {
        let version = db::template_versions::find_for_order(
            &mut *conn,
            account.id,
            current.template_id,
            Some(next.template_version),
        )
        .await?
        .ok_or_else(|| {
            ApiError::invalid_field(
                "template_version",
                "is not a version of the order's template",
            )
        })?;
        let missing = missing_merge_variables(&version.merge_fields, &next.merge_variables);
        if !missing.is_empty() {
            return Err(ApiError::MissingMergeVariables { missing });
        }
    }
    Ok(Current(db::orders::update(conn, account.id, &next).await?))
}

/// Cancel an order
///
/// A `received` order becomes `cancelled`; cancelling a cancelled order answers the same again.
#[utoipa::path(
    delete,
    path = "/v1/orders/{id}",
    operation_id = "cancelOrder",
    tag = "orders",
    params(("id" = Uuid, Path, description = "The order's id.")),
    responses(
        (status = 200, description = "The cancelled order.", body = Order),
        (status = 401, response = problems::Unauthorized),
        (status = 404, response = problems::NotFound),
        (status = 409, response = problems::Conflict),
        (status = 500, response = problems::InternalError),
        (status = 503, response = problems::ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub async fn cancel(
    account: Account,
    PathId(id, ..): PathId<Order>,
    preconditions: Preconditions,
    mut tx: Tx,
) -> Result<Current<Order>, ApiError> {
    let conn = tx.conn().await?;
    let order = db::orders::find_for_update(conn, account.id, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    preconditions.check_change(order.entity_tag())?;
    match order.status {
        OrderStatus::Cancelled => Ok(Current(order)),
        OrderStatus::Received => Ok(Current(
            db::orders::set_status(conn, account.id, id, OrderStatus::Cancelled).await?,
        )),
        status @ (OrderStatus::Processing | OrderStatus::Sent) => {
            Err(ApiError::OrderNotModifiable {
                id,
                status: status.as_str().to_owned(),
            })
        }
    }
}

/// Render an order
///
/// What the order prints: its `template_version` with every `{{field}}` replaced by its merge variable,
/// HTML-escaped, so that a variable prints as text and never as markup. Works in every status, a cancelled order
/// too. Gives 422 `missing-merge-variables` only for an order taken before versions were kept whose version's
/// content was recreated from a later one (README, "Template versions").
#[utoipa::path(
    get,
    path = "/v1/orders/{id}/render",
    operation_id = "renderOrder",
    tag = "orders",
    params(("id" = Uuid, Path, description = "The order's id.")),
    responses(
        (status = 200, description = "The filled HTML, as `text/html; charset=utf-8`.",
         content_type = "text/html", body = String),
        (status = 401, response = problems::Unauthorized),
        (status = 404, response = problems::NotFound),
        (status = 422, response = problems::UnprocessableEntity),
        (status = 500, response = problems::InternalError),
        (status = 503, response = problems::ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub async fn render(
    State(pool): State<PgPool>,
    account: Account,
    PathId(id, ..): PathId<Order>,
) -> Result<Html<String>, ApiError> {
    let order = db::orders::find(&pool, account.id, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let version = db::template_versions::find(
        &pool,
        account.id,
        order.template_id,
        Some(order.template_version),
    )
    .await?
    .ok_or_else(|| ApiError::internal("an order's template version is missing"))?;
    Ok(Html(version.render(&order.merge_variables)?))
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::NotFound {
        resource: Order::NAME,
        id: id.to_string(),
    }
}
