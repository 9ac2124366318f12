//! `/v1/templates/{id}/versions` and `/v1/templates/{id}/render`: the versions of a template as they were
//! written, and a preview of one filled with merge variables.

use axum::{
    extract::{FromRequestParts, Path, State},
    http::request::Parts,
    response::{Html, IntoResponse, Response},
};
use serde::Deserialize;
use sqlx::PgPool;
use utoipa::{ToSchema, openapi::Object};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    list::{self, List, ListOrder, ListQuery, Listed, TemplateVersionList},
    problems,
    templates::not_found as template_not_found,
};
use crate::{
    db,
    domain::{
        input::id::parse_id,
        input::member::{Member, UnknownMembers},
        input::validation::Validator,
        merge::{MergeVariables, parse_merge_variables},
        order::parse_template_version,
        schemas,
        template::{Template, TemplateVersion},
    },
    http::auth::Account,
    http::conditional::{Current, Preconditions, Tagged},
    http::error::{ApiError, Rejection},
    http::extract::{PathId, ValidJson, ValidQuery, Validate},
    idempotency::tx::Tx,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(render))
}

/// What a 404 names when the version does not exist.
const RESOURCE: &str = "template version";

/// The `{id}` and `{version}` of a version's path; text that names no version is a 404 like a missing version.
pub struct VersionPath {
    template_id: Uuid,
    version: i32,
}

impl<S: Send + Sync> FromRequestParts<S> for VersionPath {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path((id, version)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::internal(e.body_text()))?;
        match (parse_id(&id), parse_version(&version)) {
            (Ok(template_id), Ok(version)) => Ok(Self {
                template_id,
                version,
            }),
            _ => Err(version_not_found(&id, &version).into()),
        }
    }
}

/// List a template's versions
///
/// Newest first, a page at a time: pass the last `version` of a page as `starting_after` to get the next.
/// Versions are never changed: each is the template as it was when an order was taken against it.
#[utoipa::path(
    get,
    path = "/v1/templates/{id}/versions",
    operation_id = "listTemplateVersions",
    tag = "templates",
    params(("id" = Uuid, Path, description = "The template's id."), ListQuery<TemplateVersion>),
    responses(
        (status = 200, description = "A page of the template's versions.", body = TemplateVersionList),
        (status = 401, response = problems::Unauthorized),
        (status = 404, response = problems::NotFound),
        (status = 422, response = problems::UnprocessableEntity),
        (status = 500, response = problems::InternalError),
        (status = 503, response = problems::ServiceUnavailable),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    State(pool): State<PgPool>,
    account: Account,
    PathId(id, ..): PathId<Template>,
    ValidQuery(page): ValidQuery<ListQuery<TemplateVersion>>,
) -> Result<List<TemplateVersion>, ApiError> {
    let page = db::template_versions::list(&pool, account.id, id, &page).await?;
    // An empty page is the end of a template's versions, or a template that does not exist.
    if page.data.is_empty() && !db::templates::exists(&pool, account.id, id).await? {
        return Err(template_not_found(id));
    }
    Ok(page.into())
}

/// Retrieve a template version
///
/// One version exactly as it was written: its name, format, content and merge fields never change. A version the
/// template does not have, or text that is not a version number, is a 404.
#[utoipa::path(
    get,
    path = "/v1/templates/{id}/versions/{version}",
    operation_id = "getTemplateVersion",
    tag = "templates",
    params(
        ("id" = Uuid, Path, description = "The template's id."),
        ("version" = i32, Path, minimum = 1, description = "The version's number."),
    ),
    responses(
        (status = 200, description = "The version, as it was written.", body = TemplateVersion),
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
    path: VersionPath,
    preconditions: Preconditions,
) -> Result<Response, ApiError> {
    let version =
        db::template_versions::find(&pool, account.id, path.template_id, Some(path.version))
            .await?
            .ok_or_else(|| {
                version_not_found(&path.template_id.to_string(), &path.version.to_string())
            })?;
    if let Some(not_modified) = preconditions.check_read(version.entity_tag())? {
        return Ok(not_modified);
    }
    Ok(Current(version).into_response())
}

/// A preview: merge variables and the version to fill with them.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"merge_variables": {"first_name": "Anna", "city": "Amsterdam"}}))]
pub struct RenderTemplate {
    /// A value for every merge field of the version; more are allowed.
    #[serde(default)]
    #[schema(value_type = schemas::MergeVariablesSchema)]
    merge_variables: Member<MergeVariables>,
    /// The version to render; the latest when left out or `null`.
    #[serde(default)]
    #[schema(value_type = Option<i32>, minimum = 1)]
    version: Member<i64>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: UnknownMembers,
}

/// A validated preview request.
pub struct Preview {
    merge_variables: MergeVariables,
    version: Option<i32>,
}

impl Validate for RenderTemplate {
    type Valid = Preview;

    fn validate(self) -> Result<Preview, ApiError> {
        let mut v = Validator::new();
        v.unknown::<Self>(self.unknown);
        let merge_variables = v
            .optional_with(
                "merge_variables",
                self.merge_variables,
                parse_merge_variables,
            )
            .map(Option::unwrap_or_default);
        let version = v.optional_with("version", self.version, parse_template_version);
        Ok(v.finish(|| {
            Some(Preview {
                merge_variables: merge_variables?,
                version: version?,
            })
        })?)
    }
}

/// Render a template
///
/// A preview of what an order would print, without taking one: the template's latest version (or `version`)
/// with every `{{field}}` replaced by its merge variable, HTML-escaped, so that a variable prints as text and
/// never as markup. Missing merge variables give the same 422 as an order, and so does a `version` the template
/// does not have. Nothing is written.
#[utoipa::path(
    post,
    path = "/v1/templates/{id}/render",
    operation_id = "renderTemplate",
    tag = "templates",
    params(("id" = Uuid, Path, description = "The template's id.")),
    request_body = RenderTemplate,
    responses(
        (status = 200, description = "The filled HTML, as `text/html; charset=utf-8`.",
         content_type = "text/html", body = String),
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
pub async fn render(
    account: Account,
    PathId(id, ..): PathId<Template>,
    mut tx: Tx,
    ValidJson(preview): ValidJson<RenderTemplate>,
) -> Result<Html<String>, ApiError> {
    let conn = tx.conn().await?;
    let found = db::template_versions::find(&mut *conn, account.id, id, preview.version).await?;
    let Some(version) = found else {
        // A version the template does not have is a broken rule of the body, as for an order PATCH.
        return Err(
            if preview.version.is_some() && db::templates::exists(conn, account.id, id).await? {
                ApiError::invalid_field("version", "is not a version of the template")
            } else {
                template_not_found(id)
            },
        );
    };
    Ok(Html(version.render(&preview.merge_variables)?))
}

impl Listed for TemplateVersion {
    type Key = i32;
    const KEY: &'static str = "version";
    const ONE: &'static str = "version";
    const PLURAL: &'static str = "versions";
    const ORDER: ListOrder = ListOrder::NewestFirst;

    fn key_schema() -> Object {
        list::number_schema(1)
    }

    fn parse_key(key: &str) -> Result<i32, String> {
        parse_version(key)
    }
}

/// A template version in a query or path: a whole number from 1.
pub fn parse_version(version: &str) -> Result<i32, String> {
    match version.parse::<i32>() {
        Ok(version) if version >= 1 => Ok(version),
        _ => Err("must be a template version: a whole number from 1".to_owned()),
    }
}

fn version_not_found(template_id: &str, version: &str) -> ApiError {
    ApiError::NotFound {
        resource: RESOURCE,
        id: format!("{template_id}/versions/{version}"),
    }
}
