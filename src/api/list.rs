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
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
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
    db::{Key, KeyRange, Page, PageRequest},
    domain::{
        batch::{OrderBatch, RowResult},
        input::id::{lowest_id_from, parse_id},
        input::validation::Validator,
        order::Order,
        template::{Template, TemplateVersion},
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

/// The order of a list, by its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListOrder {
    /// Highest key first: the newest object, the latest version.
    NewestFirst,
    /// Lowest key first: the first row of a file.
    FileOrder,
}

impl ListOrder {
    /// The order as descriptions say it.
    pub fn words(self) -> &'static str {
        match self {
            Self::NewestFirst => "newest first",
            Self::FileOrder => "in file order",
        }
    }

    /// What comes after a page, and what before it.
    fn sides(self) -> (&'static str, &'static str) {
        match self {
            Self::NewestFirst => ("older", "newer"),
            Self::FileOrder => ("later", "earlier"),
        }
    }
}

/// An object that a list pages through: its key, its list's order, and the words its parameters and schema are
/// described with, so that no description can name another key or order than the list has.
pub trait Listed {
    /// The object's place in its list: its `id`, or a number of its own (a version, a row).
    type Key: ListKey;
    /// The member that holds the key: `id`, `version`, `row`.
    const KEY: &'static str;
    /// One object, as descriptions name it: "order".
    const ONE: &'static str;
    /// More than one: "orders".
    const PLURAL: &'static str;
    const ORDER: ListOrder;

    /// The schema of the key, as `starting_after` and `ending_before` take it.
    fn key_schema() -> Object;

    /// Reads `starting_after` or `ending_before`.
    fn parse_key(key: &str) -> Result<Self::Key, String>;
}

/// A list's key, and whether it tells when an object was created.
pub trait ListKey: Key {
    /// Whether keys are in the order of creation, so that the list takes `created[gte]` and `created[lt]`.
    const CREATED: bool;

    /// The lowest key of an object created at `time` or later, for keys in the order of creation.
    fn created_from(time: OffsetDateTime) -> Self;
}

/// Ids are UUIDv7, in the order the server took them ([`lowest_id_from`]).
impl ListKey for Uuid {
    const CREATED: bool = true;

    fn created_from(time: OffsetDateTime) -> Self {
        lowest_id_from(time)
    }
}

/// Versions and row numbers count; they tell no time.
impl ListKey for i32 {
    const CREATED: bool = false;

    fn created_from(_: OffsetDateTime) -> Self {
        i32::MIN
    }
}

/// Declares that a list of `$item`, newest first, pages by `id`, its descriptions naming one `$one` and more
/// `$plural`.
macro_rules! listed_by_id {
    ($item:ty, $one:literal, $plural:literal) => {
        impl Listed for $item {
            type Key = Uuid;
            const KEY: &'static str = "id";
            const ONE: &'static str = $one;
            const PLURAL: &'static str = $plural;
            const ORDER: ListOrder = ListOrder::NewestFirst;

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

listed_by_id!(Template, "template", "templates");
listed_by_id!(OrderBatch, "batch", "batches");
listed_by_id!(Order, "order", "orders");

/// The schema of a key that is a whole number from `minimum`: a version, a row.
pub fn number_schema(minimum: i32) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
        .minimum(Some(minimum))
        .build()
}

/// The query parameters of a list besides those of every list ([`ListQuery`]): what it is filtered by.
pub trait Filter: Default + IntoParams {
    /// The filter once its parameters are checked.
    type Valid;
    /// The filter's parameters, for the message that names an unknown one.
    const PARAMETERS: &'static [&'static str];

    /// Takes one parameter; `false` when it is none of the filter's.
    fn take(&mut self, name: &str, value: String) -> bool;

    /// Checks the parameters, recording each problem in `v`.
    fn validate_in(self, v: &mut Validator) -> Option<Self::Valid>;
}

/// The filter of a list that takes only the parameters of every list.
#[derive(Debug, Default)]
pub struct NoFilter;

impl IntoParams for NoFilter {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        Vec::new()
    }
}

impl Filter for NoFilter {
    type Valid = ();
    const PARAMETERS: &'static [&'static str] = &[];

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

/// The parameters of every list: the size of the page and where it is.
const PAGE_PARAMETERS: [&str; 3] = ["limit", "starting_after", "ending_before"];
/// The parameters of a list whose keys are in the order of creation ([`ListKey::CREATED`]).
const CREATED_PARAMETERS: [&str; 2] = ["created[gte]", "created[lt]"];

/// Which page of a list of `T` to return, and what `F` lets through; an unknown parameter is rejected like an
/// unknown body member.
#[derive(Debug)]
pub struct ListQuery<T, F = NoFilter> {
    limit: Option<String>,
    starting_after: Option<String>,
    ending_before: Option<String>,
    created_gte: Option<String>,
    created_lt: Option<String>,
    filter: F,
    listed: PhantomData<T>,
}

impl<T: Listed, F: Filter> ListQuery<T, F> {
    /// Every parameter of the list, for the message that names an unknown one.
    fn parameters() -> impl Iterator<Item = &'static str> {
        let created = if T::Key::CREATED {
            &CREATED_PARAMETERS[..]
        } else {
            &[]
        };
        PAGE_PARAMETERS
            .into_iter()
            .chain(created.iter().copied())
            .chain(F::PARAMETERS.iter().copied())
    }

    /// Takes one parameter; `false` when the list has none of that name.
    fn take(&mut self, name: &str, value: String) -> bool {
        let slot = match name {
            "limit" => &mut self.limit,
            "starting_after" => &mut self.starting_after,
            "ending_before" => &mut self.ending_before,
            "created[gte]" if T::Key::CREATED => &mut self.created_gte,
            "created[lt]" if T::Key::CREATED => &mut self.created_lt,
            _ => return self.filter.take(name, value),
        };
        *slot = Some(value);
        true
    }
}

impl<'de, T: Listed, F: Filter> Deserialize<'de> for ListQuery<T, F> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Parameters<T, F>(PhantomData<(T, F)>);

        impl<'de, T: Listed, F: Filter> Visitor<'de> for Parameters<T, F> {
            type Value = ListQuery<T, F>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("query parameters")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut query = ListQuery {
                    limit: None,
                    starting_after: None,
                    ending_before: None,
                    created_gte: None,
                    created_lt: None,
                    filter: F::default(),
                    listed: PhantomData,
                };
                while let Some(name) = map.next_key::<String>()? {
                    let value: String = map.next_value()?;
                    if !query.take(&name, value) {
                        // serde's own wording, which the 422 turns into "is not a known field; expected ...".
                        let expected: Vec<String> = ListQuery::<T, F>::parameters()
                            .map(|name| format!("`{name}`"))
                            .collect();
                        return Err(de::Error::custom(format_args!(
                            "unknown field `{name}`, expected one of {}",
                            expected.join(", ")
                        )));
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
        let (key, one, plural, order) = (T::KEY, T::ONE, T::PLURAL, T::ORDER.words());
        let mut parameters = vec![
            query_parameter(
                "limit",
                format!("How many {plural} to return, 1 to {MAX_LIMIT}."),
                limit.build(),
            ),
            query_parameter(
                "starting_after",
                format!(
                    "The `{key}` of the last {one} of the previous page: the page holds the {plural} after it, \
                     {order}."
                ),
                T::key_schema(),
            ),
            query_parameter(
                "ending_before",
                format!(
                    "The `{key}` of the first {one} of the next page: the page holds the {plural} just before it, \
                     still {order}, and `has_more` tells whether more come before those. Not with \
                     `starting_after`."
                ),
                T::key_schema(),
            ),
        ];
        if T::Key::CREATED {
            let timestamp = || {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                    .build()
            };
            parameters.push(query_parameter(
                "created[gte]",
                format!(
                    "Only {plural} created at this time or later (RFC 3339, such as `2026-12-24T09:30:00Z`): by \
                     the time in their `id`, the millisecond the server took it."
                ),
                timestamp(),
            ));
            parameters.push(query_parameter(
                "created[lt]",
                format!(
                    "Only {plural} created before this time (RFC 3339): by the time in their `id`, as \
                     `created[gte]`."
                ),
                timestamp(),
            ));
        }
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
        let key = |key: Option<String>| key.as_deref().map(T::parse_key).transpose();
        let starting_after = v.check("starting_after", key(self.starting_after));
        let ending_before = v.check("ending_before", key(self.ending_before));
        if let (Some(Some(_)), Some(Some(_))) = (starting_after, ending_before) {
            v.check::<()>(
                "ending_before",
                Err("cannot be given with `starting_after`: a page is after one object or before one".to_owned()),
            );
        }
        let created_gte = v.check("created[gte]", parse_time(self.created_gte.as_deref()));
        let created_lt = v.check("created[lt]", parse_time(self.created_lt.as_deref()));
        let filter = self.filter.validate_in(&mut v);
        Ok(v.finish(|| {
            let mut keys = KeyRange::default();
            if let Some(time) = created_gte? {
                keys.at_least(T::Key::created_from(time));
            }
            if let Some(time) = created_lt? {
                keys.below(T::Key::created_from(time));
            }
            let (starting_after, ending_before) = (starting_after?, ending_before?);
            let newest_first = T::ORDER == ListOrder::NewestFirst;
            match (starting_after, ending_before) {
                (Some(after), _) if newest_first => keys.below(after),
                (Some(after), _) => keys.above(after),
                (None, Some(before)) if newest_first => keys.above(before),
                (None, Some(before)) => keys.below(before),
                (None, None) => {}
            }
            Some(PageRequest {
                limit: limit?,
                keys,
                backward: ending_before.is_some(),
                filter: filter?,
            })
        })?)
    }
}

/// An RFC 3339 timestamp, such as `2026-12-24T09:30:00Z` or with an offset, `2026-12-24T10:30:00+01:00`.
fn parse_time(time: Option<&str>) -> Result<Option<OffsetDateTime>, String> {
    time.map(|time| {
        OffsetDateTime::parse(time, &Rfc3339).map_err(|_| {
            "must be an RFC 3339 timestamp, such as 2026-12-24T09:30:00Z (a `+` of an offset sent as %2B)"
                .to_owned()
        })
    })
    .transpose()
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

/// The schema of a [`List`] of `T`, whose `data` items refer to `T`'s own schema, and whose descriptions name `T`'s
/// order and key. utoipa's derive would copy `T`'s schema into each list instead, and generated clients would get a
/// second class for the same object.
fn list_schema<T: ToSchema + Listed>() -> RefOr<Schema> {
    let (key, plural, order) = (T::KEY, T::PLURAL, T::ORDER.words());
    let (after, before) = T::ORDER.sides();
    ObjectBuilder::new()
        .description(Some(format!("One page of a list of {plural}, {order}.")))
        .property(
            "data",
            ArrayBuilder::new()
                .items(Ref::from_schema_name(T::name()))
                .description(Some(format!("The {plural} of the page, {order}."))),
        )
        .required("data")
        .property(
            "has_more",
            ObjectBuilder::new().schema_type(Type::Boolean).description(Some(format!(
                "Whether more {plural} follow in the direction of the walk: {after} ones after the page (ask for \
                 them with `starting_after` set to the last `{key}` of `data`), or, for a page asked for with \
                 `ending_before`, {before} ones before it (ask for them with `ending_before` set to the first \
                 `{key}` of `data`)."
            ))),
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
    /// `OrderBatchList`: a page of order batches, without their rows.
    OrderBatchList of OrderBatch
);
list_schema!(
    /// `RowResultList`: a page of an order batch's row results.
    RowResultList of RowResult
);
list_schema!(
    /// `OrderList`: a page of orders.
    OrderList of Order
);
