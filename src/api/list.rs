//! The one list shape: a page of objects, the query that asks for it, and its schema.

use std::{fmt, marker::PhantomData};

use axum::{
    Json,
    response::{IntoResponse, Response},
};
use serde::{
    Deserialize, Deserializer, Serialize,
    de::{self, MapAccess, Visitor},
};
use utoipa::{
    IntoParams, PartialSchema, ToSchema,
    openapi::{
        ArrayBuilder, KnownFormat, Object, ObjectBuilder, Ref, RefOr, Required, Schema,
        SchemaFormat, Type,
        path::{Parameter, ParameterBuilder, ParameterIn},
    },
};
use uuid::Uuid;

use crate::{
    db::{Page, PageRequest},
    domain::{
        batch::{OrderBatch, RowResult},
        id::parse_id,
        order::Order,
        template::{Template, TemplateVersion},
        validation::Validator,
    },
    http::{error::ApiError, extract::Validate},
};

/// One page of a list; its schema is declared with `list_schema!`, as [`TemplateList`] or [`OrderList`] are.
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

impl<T: Serialize> IntoResponse for List<T> {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}

/// An object that a list pages through: the key `starting_after` names, and how the list's parameters say it.
pub trait Listed {
    /// The object's place in its list: its `id`, or a number of its own (a version, a row).
    type Key;
    /// What `limit` counts, as its description says it: "orders".
    const PLURAL: &'static str;
    /// The description of `starting_after`.
    const STARTING_AFTER: &'static str;

    /// The schema of `starting_after`.
    fn key_schema() -> Object;

    /// Reads `starting_after`.
    fn parse_key(key: &str) -> Result<Self::Key, String>;
}

/// Declares that a list of `$item` pages by `id`, its parameters counting `$plural` and naming the last `$one`.
macro_rules! listed_by_id {
    ($item:ty, $plural:literal, $one:literal) => {
        impl Listed for $item {
            type Key = Uuid;
            const PLURAL: &'static str = $plural;
            const STARTING_AFTER: &'static str = concat!(
                "The `id` of the last ",
                $one,
                " of the previous page; the page starts after it."
            );

            fn key_schema() -> Object {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
                    .build()
            }

            fn parse_key(key: &str) -> Result<Uuid, String> {
                parse_id(key)
            }
        }
    };
}

listed_by_id!(Template, "objects", "object");
listed_by_id!(OrderBatch, "objects", "object");
listed_by_id!(Order, "orders", "order");

/// The schema of a key that is a whole number from `minimum`: a version, a row.
pub fn number_schema(minimum: i32) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
        .minimum(Some(minimum))
        .build()
}

/// The query parameters of a list besides `limit` and `starting_after`: what it is filtered by.
pub trait Filter: Default + IntoParams {
    /// The filter once its parameters are checked.
    type Valid;
    /// Every parameter of the list, for the message that names an unknown one.
    const PARAMETERS: &'static [&'static str];

    /// Takes one parameter; `false` when it is none of the filter's.
    fn take(&mut self, name: &str, value: String) -> bool;

    /// Checks the parameters, recording each problem in `v`.
    fn validate_in(self, v: &mut Validator) -> Option<Self::Valid>;
}

/// The filter of a list that takes no parameters but `limit` and `starting_after`.
#[derive(Debug, Default)]
pub struct NoFilter;

impl IntoParams for NoFilter {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        Vec::new()
    }
}

impl Filter for NoFilter {
    type Valid = ();
    const PARAMETERS: &'static [&'static str] = &["limit", "starting_after"];

    fn take(&mut self, _: &str, _: String) -> bool {
        false
    }

    fn validate_in(self, _: &mut Validator) -> Option<()> {
        Some(())
    }
}

/// The default page size.
const DEFAULT_LIMIT: i64 = 20;
/// The largest page size.
const MAX_LIMIT: i64 = 100;

/// Which page of a list of `T` to return, and what `F` lets through; an unknown parameter is rejected like an
/// unknown body member.
#[derive(Debug)]
pub struct ListQuery<T, F = NoFilter> {
    limit: Option<String>,
    starting_after: Option<String>,
    filter: F,
    listed: PhantomData<T>,
}

impl<'de, T, F: Filter> Deserialize<'de> for ListQuery<T, F> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Parameters<T, F>(PhantomData<(T, F)>);

        impl<'de, T, F: Filter> Visitor<'de> for Parameters<T, F> {
            type Value = ListQuery<T, F>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("query parameters")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut query = ListQuery {
                    limit: None,
                    starting_after: None,
                    filter: F::default(),
                    listed: PhantomData,
                };
                while let Some(name) = map.next_key::<String>()? {
                    let value: String = map.next_value()?;
                    match name.as_str() {
                        "limit" => query.limit = Some(value),
                        "starting_after" => query.starting_after = Some(value),
                        _ if query.filter.take(&name, value) => {}
                        _ => return Err(de::Error::unknown_field(&name, F::PARAMETERS)),
                    }
                }
                Ok(query)
            }
        }

        deserializer.deserialize_map(Parameters(PhantomData))
    }
}

impl<T: Listed, F: Filter> IntoParams for ListQuery<T, F> {
    fn into_params(parameter_in: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let limit = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .default(Some(DEFAULT_LIMIT.into()))
            .maximum(Some(MAX_LIMIT))
            .minimum(Some(1));
        let mut parameters = vec![
            query_parameter(
                "limit",
                format!("How many {} to return, 1 to {MAX_LIMIT}.", T::PLURAL),
                limit.build(),
            ),
            query_parameter(
                "starting_after",
                T::STARTING_AFTER.to_owned(),
                T::key_schema(),
            ),
        ];
        parameters.extend(F::into_params(parameter_in));
        parameters
    }
}

fn query_parameter(name: &str, description: String, schema: Object) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .description(Some(description))
        .required(Required::False)
        .schema(Some(schema))
        .build()
}

impl<T: Listed, F: Filter> Validate for ListQuery<T, F> {
    type Valid = PageRequest<T::Key, F::Valid>;

    fn validate(self) -> Result<Self::Valid, ApiError> {
        let mut v = Validator::new();
        let limit = v.check("limit", parse_limit(self.limit.as_deref()));
        let starting_after = v.check(
            "starting_after",
            self.starting_after.as_deref().map(T::parse_key).transpose(),
        );
        let filter = self.filter.validate_in(&mut v);
        Ok(v.finish(|| {
            Some(PageRequest {
                limit: limit?,
                starting_after: starting_after?,
                filter: filter?,
            })
        })?)
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
    OrderBatchList of OrderBatch
);
list_schema!(
    /// `RowResultList`: a page of an order batch's row results, in file order.
    RowResultList of RowResult
);
list_schema!(
    /// `OrderList`: a page of orders.
    OrderList of Order
);
