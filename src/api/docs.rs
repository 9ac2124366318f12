//! The OpenAPI document's frame: title, security scheme, tags and reusable responses; routes add their paths.

use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use super::problems;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "order-intake",
        description = "Submit print-and-mail orders and the templates they are printed from.",
    ),
    modifiers(&BearerAuth),
    components(responses(
        problems::BadRequest,
        problems::Unauthorized,
        problems::NotFound,
        problems::Conflict,
        problems::PayloadTooLarge,
        problems::UnsupportedMediaType,
        problems::UnprocessableEntity,
        problems::InternalError,
        problems::ServiceUnavailable,
    )),
    tags(
        (name = "templates", description = "HTML templates with `{{field}}` merge placeholders."),
        (name = "orders", description = "Mail pieces to print from a template for one recipient."),
        (name = "operations", description = "Health checks for operators and orchestrators."),
        (name = "problems", description = "What the `type` of an error response means."),
    )
)]
struct ApiDoc;

/// The document before the routes add their paths.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
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
