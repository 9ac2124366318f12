//! `/v1/templates`: create, list, read, change and delete templates.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    list::{List, ListQuery, TemplateList},
    problems,
};
use crate::{
    db::{self, templates::Deletion},
    domain::{
        input::member::{Member, UnknownMembers},
        input::validation::Validator,
        metadata::{Metadata, MetadataChanges, parse_metadata, parse_metadata_changes},
        schemas,
        template::{
            NewTemplate, Template, TemplateChanges, TemplateContent, TemplateFormat, parse_name,
        },
    },
    http::auth::Account,
    http::conditional::{Current, Preconditions, Tagged},
    http::error::ApiError,
    http::extract::{PathId, Resource, ValidJson, ValidQuery, Validate},
    http::response::Created,
    idempotency::tx::Tx,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update, delete))
}

impl Resource for Template {
    const NAME: &'static str = "template";
}

/// A new template.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "name": "Welcome postcard",
    "format": "postcard_a6",
    "content": "<p>Hello {{first_name}}, welcome to {{city}}!</p>",
    "metadata": {"campaign": "winter-2026"}
}))]
pub struct CreateTemplate {
    #[serde(default)]
    #[schema(schema_with = schemas::text_200, required = true)]
    name: Member<String>,
    #[serde(default)]
    #[schema(value_type = TemplateFormat, required = true)]
    format: Member<TemplateFormat>,
    /// `{{name}}` placeholders are filled from each order's `merge_variables`.
    #[serde(default)]
    #[schema(schema_with = schemas::template_content, required = true)]
    content: Member<String>,
    /// Your own key/value pairs; `{}` when left out or `null`.
    #[serde(default)]
    #[schema(value_type = Option<schemas::MetadataSchema>)]
    metadata: Member<Metadata>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: UnknownMembers,
}

impl Validate for CreateTemplate {
    type Valid = (NewTemplate, Metadata);

    fn validate(self) -> Result<Self::Valid, ApiError> {
        let mut v = Validator::new();
        v.unknown::<Self>(self.unknown);
        let name = v.required_with("name", self.name, parse_name);
        let format = v.required("format", self.format);
        let content = v.required_with("content", self.content, TemplateContent::parse);
        let metadata = v
            .optional("metadata", self.metadata)
            .and_then(|metadata| parse_metadata(&mut v, metadata.unwrap_or_default()));
        Ok(v.finish(|| {
            Some((
                NewTemplate {
                    name: name?,
                    format: format?,
                    content: content?,
                },
                metadata?,
            ))
        })?)
    }
}

/// Changes to a template; members left out stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"name": "Welcome postcard (winter)"}))]
pub struct UpdateTemplate {
    #[serde(default)]
    #[schema(schema_with = schemas::text_200)]
    name: Member<String>,
    #[serde(default)]
    #[schema(value_type = TemplateFormat)]
    format: Member<TemplateFormat>,
    #[serde(default)]
    #[schema(schema_with = schemas::template_content)]
    content: Member<String>,
    /// Merged into the template's metadata: a value sets its key, `null` removes it; `null` removes every key.
    #[serde(default)]
    #[schema(value_type = Option<schemas::MetadataChangesSchema>)]
    metadata: Member<MetadataChanges>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: UnknownMembers,
}

impl Validate for UpdateTemplate {
    type Valid = TemplateChanges;

    fn validate(self) -> Result<TemplateChanges, ApiError> {
        let mut v = Validator::new();
        v.unknown::<Self>(self.unknown);
        let name = v.change_with("name", self.name, parse_name);
        let format = v.change("format", self.format);
        let content = v.change_with("content", self.content, TemplateContent::parse);
        let metadata = v
            .patch("metadata", self.metadata)
            .and_then(|changes| parse_metadata_changes(&mut v, changes));
        Ok(v.finish(|| {
            Some(TemplateChanges {
                name: name?,
                format: format?,
                content: content?,
                metadata: metadata?,
            })
        })?)
    }
}

/// Create a template
///
/// Its `merge_fields` are read from the `{{name}}` placeholders in `content`; it is written as its version 1.
#[utoipa::path(
    post,
    path = "/v1/templates",
    operation_id = "createTemplate",
    tag = "templates",
    request_body = CreateTemplate,
    responses(
        (status = 201, description = "The template was created.", body = Template,
         headers(("Location" = String, description = "The template's URL."))),
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
    mut tx: Tx,
    ValidJson((new, metadata)): ValidJson<CreateTemplate>,
) -> Result<Created<Template>, ApiError> {
    let template = db::templates::insert(tx.conn().await?, account.id, &new, &metadata).await?;
    Ok(Created::at(template.location(), template))
}

/// List templates
///
/// Newest first, a page at a time: pass the last `id` of a page as `starting_after` to get the next, or the first
/// `id` as `ending_before` to get the one before. Filter by the time of creation (`created[gte]`, `created[lt]`).
#[utoipa::path(
    get,
    path = "/v1/templates",
    operation_id = "listTemplates",
    tag = "templates",
    params(ListQuery<Template>),
    responses(
        (status = 200, description = "A page of templates.", body = TemplateList),
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
    ValidQuery(page): ValidQuery<ListQuery<Template>>,
) -> Result<List<Template>, ApiError> {
    Ok(db::templates::list(&pool, account.id, &page).await?.into())
}

/// Retrieve a template
///
/// The template as it is now: its current `content`, `merge_fields` and `version`; another account's template is
/// not found.
#[utoipa::path(
    get,
    path = "/v1/templates/{id}",
    operation_id = "getTemplate",
    tag = "templates",
    params(("id" = Uuid, Path, description = "The template's id.")),
    responses(
        (status = 200, description = "The template.", body = Template),
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
    PathId(id, ..): PathId<Template>,
    preconditions: Preconditions,
) -> Result<Response, ApiError> {
    let template = db::templates::find(&pool, account.id, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    if let Some(not_modified) = preconditions.check_read(template.entity_tag())? {
        return Ok(not_modified);
    }
    Ok(Current(template).into_response())
}

/// Update a template
///
/// A change of `name`, `format` or `content` writes the next version, which new orders are taken against; the
/// earlier versions stay as they were, for the orders taken against them. `metadata` is merged in (a `null`
/// value removes its key, `"metadata": null` removes all) without a new version. A PATCH that changes nothing
/// leaves the template as it is.
#[utoipa::path(
    patch,
    path = "/v1/templates/{id}",
    operation_id = "updateTemplate",
    tag = "templates",
    params(("id" = Uuid, Path, description = "The template's id.")),
    request_body = UpdateTemplate,
    responses(
        (status = 200, description = "The template as it is now.", body = Template),
        (status = 400, response = problems::BadRequest),
        (status = 401, response = problems::Unauthorized),
        (status = 404, response = problems::NotFound),
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
    PathId(id, ..): PathId<Template>,
    preconditions: Preconditions,
    mut tx: Tx,
    ValidJson(changes): ValidJson<UpdateTemplate>,
) -> Result<Current<Template>, ApiError> {
    let conn = tx.conn().await?;
    let current = db::templates::find_for_update(conn, account.id, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    preconditions.check_change(current.entity_tag())?;
    match changes.apply_to(&current)? {
        None => Ok(Current(current)),
        Some(update) => Ok(Current(
            db::templates::update(conn, account.id, &current, &update).await?,
        )),
    }
}

/// Delete a template
///
/// Only a template none of whose versions an order refers to can be deleted; its versions go with it.
#[utoipa::path(
    delete,
    path = "/v1/templates/{id}",
    operation_id = "deleteTemplate",
    tag = "templates",
    params(("id" = Uuid, Path, description = "The template's id.")),
    responses(
        (status = 204, description = "The template was deleted."),
        (status = 401, response = problems::Unauthorized),
        (status = 404, response = problems::NotFound),
        (status = 409, response = problems::Conflict),
        (status = 500, response = problems::InternalError),
        (status = 503, response = problems::ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub async fn delete(
    account: Account,
    PathId(id, ..): PathId<Template>,
    preconditions: Preconditions,
    mut tx: Tx,
) -> Result<StatusCode, ApiError> {
    let conn = tx.conn().await?;
    if preconditions.is_given() {
        let current = db::templates::find_for_update(conn, account.id, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        preconditions.check_change(current.entity_tag())?;
    }
    match db::templates::delete(conn, account.id, id).await? {
        Deletion::Deleted => Ok(StatusCode::NO_CONTENT),
        Deletion::NotFound => Err(not_found(id)),
        Deletion::InUse { orders } => Err(ApiError::TemplateInUse { id, orders }),
    }
}

pub(super) fn not_found(id: Uuid) -> ApiError {
    ApiError::NotFound {
        resource: Template::NAME,
        id: id.to_string(),
    }
}
