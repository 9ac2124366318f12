//! The one list shape: a page of objects, the query that asks for it, and its schema.

use serde::{Deserialize, Serialize};
use utoipa::{
    IntoParams, PartialSchema, ToSchema,
    openapi::{ArrayBuilder, ObjectBuilder, Ref, RefOr, Schema, Type},
};

use crate::{
    db::{Page, PageRequest},
    domain::{
        id::parse_id,
        order::Order,
        template::{Template, TemplateVersion},
        validation::Validator,
    },
    http::{error::ApiError, extract},
};

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
    pub limit: Option<String>,
    /// The `id` of the last object of the previous page; the page starts after it.
    #[param(value_type = Option<Uuid>)]
    pub starting_after: Option<String>,
}

impl ListQuery {
    pub fn validate_in(self, v: &mut Validator) -> Option<PageRequest> {
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

pub fn parse_limit(limit: Option<&str>) -> Result<i64, String> {
    let Some(limit) = limit else {
        return Ok(DEFAULT_LIMIT);
    };
    match limit.parse::<i64>() {
        Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
        _ => Err(format!("must be a whole number from 1 to {MAX_LIMIT}")),
    }
}
