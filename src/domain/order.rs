//! Orders: their status, merge variables and send date.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime, macros::format_description};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    address::Address,
    input::patch::Patch,
    input::validation::{FieldError, ValidationError},
    merge::MergeVariables,
    metadata::{Metadata, MetadataChanges, merge_metadata},
    schemas,
};

/// Where an order is in its life. Orders are taken as `received`; `processing` and `sent` are reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum OrderStatus {
    Received,
    Processing,
    Sent,
    Cancelled,
}

impl OrderStatus {
    /// Every status, in the order of an order's life.
    pub const ALL: [Self; 4] = [
        Self::Received,
        Self::Processing,
        Self::Sent,
        Self::Cancelled,
    ];

    /// A status as a query names it.
    pub fn parse(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.into_iter().map(Self::as_str).collect();
                format!("must be one of {}", names.join(", "))
            })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Processing => "processing",
            Self::Sent => "sent",
            Self::Cancelled => "cancelled",
        }
    }
}

/// An order, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "019ac9f1-1a2b-7c3d-8e4f-5a6b7c8d9e0f",
    "template_id": "019ac9f0-7c1e-7a4b-9d0e-2f1c3b4a5d6e",
    "template_version": 1,
    "recipient": {"name": "Anna de Vries", "company": null, "street": "Keizersgracht", "house_number": "123A",
                  "postal_code": "1015 CJ", "city": "Amsterdam", "country": "NL"},
    "sender": null,
    "merge_variables": {"first_name": "Anna", "city": "Amsterdam"},
    "send_date": "2026-12-01",
    "status": "received",
    "metadata": {"customer_id": "4711"},
    "created_at": "2026-11-28T12:00:00.000000Z",
    "updated_at": "2026-11-28T12:00:00.000000Z"
}))]
pub struct Order {
    pub id: Uuid,
    pub template_id: Uuid,
    /// The version of the template the order prints: the latest when the order was taken, or the one a PATCH
    /// set.
    pub template_version: i32,
    pub recipient: Address,
    #[schema(required = true)]
    pub sender: Option<Address>,
    #[schema(value_type = schemas::MergeVariablesSchema)]
    pub merge_variables: MergeVariables,
    /// The day to send the mail piece (UTC); `null` for as soon as possible.
    #[serde(with = "iso_date")]
    #[schema(schema_with = schemas::optional_date, required = true)]
    pub send_date: Option<Date>,
    pub status: OrderStatus,
    #[schema(value_type = schemas::MetadataSchema)]
    pub metadata: Metadata,
    #[serde(with = "super::timestamp")]
    pub created_at: OffsetDateTime,
    #[serde(with = "super::timestamp")]
    pub updated_at: OffsetDateTime,
    /// 1 when taken, one more with every change: the version its entity tag names. Sent as `ETag`, not in the body.
    #[serde(skip)]
    pub row_version: i32,
}

impl Order {
    pub fn location(&self) -> String {
        format!("/v1/orders/{}", self.id)
    }

    /// Whether the merge variables must be checked again: they or the version they fill changed.
    pub fn changes_merge_of(&self, current: &Order) -> bool {
        self.template_version != current.template_version
            || self.merge_variables != current.merge_variables
    }
}

/// An order that satisfies every rule that does not depend on its template.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub template_id: Uuid,
    pub recipient: Address,
    pub sender: Option<Address>,
    pub merge_variables: MergeVariables,
    pub send_date: Option<Date>,
    pub metadata: Metadata,
    /// When the order was taken, by this service's clock (UTC): its `created_at`, and the "today" its send date
    /// was checked against. One instant for both, so the database's `orders_send_date_not_before_creation` check
    /// cannot disagree with the validation at midnight.
    pub taken_at: OffsetDateTime,
}

/// The members a PATCH sets; the others stay as they are.
#[derive(Debug, Clone, Default)]
pub struct OrderChanges {
    pub template_version: Option<i32>,
    pub recipient: Option<Address>,
    pub sender: Patch<Address>,
    pub merge_variables: Option<MergeVariables>,
    pub send_date: Patch<Date>,
    pub metadata: Patch<MetadataChanges>,
}

impl OrderChanges {
    /// The order after the changes, `None` when they change nothing; an error when the merged metadata breaks its
    /// limits.
    pub fn apply_to(self, current: &Order) -> Result<Option<Order>, ValidationError> {
        let metadata = merge_metadata(&current.metadata, self.metadata).map_err(|message| {
            ValidationError::Fields(vec![FieldError::new("metadata", message)])
        })?;
        let next = Order {
            template_version: self.template_version.unwrap_or(current.template_version),
            recipient: self.recipient.unwrap_or_else(|| current.recipient.clone()),
            sender: self.sender.apply(current.sender.clone()),
            merge_variables: self
                .merge_variables
                .unwrap_or_else(|| current.merge_variables.clone()),
            send_date: self.send_date.apply(current.send_date),
            metadata,
            ..current.clone()
        };
        Ok((next != *current).then_some(next))
    }
}

/// A template version as a PATCH names it: a whole number from 1.
pub fn parse_template_version(version: i64) -> Result<i32, String> {
    i32::try_from(version)
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| {
            "must be a version of the order's template: a whole number from 1".to_owned()
        })
}

/// A send date: `YYYY-MM-DD`, not before today (UTC).
pub fn parse_send_date(date: &str, today: Date) -> Result<Date, String> {
    let date = Date::parse(date, format_description!("[year]-[month]-[day]"))
        .map_err(|_| "must be a date as YYYY-MM-DD".to_owned())?;
    if date < today {
        return Err(format!("must not be in the past (today is {today} UTC)"));
    }
    Ok(date)
}

/// Today's date in UTC, the reference for send dates.
pub fn today() -> Date {
    OffsetDateTime::now_utc().date()
}

/// `Option<Date>` as `YYYY-MM-DD` or `null`.
mod iso_date {
    use serde::Serializer;
    use time::{Date, macros::format_description};

    pub fn serialize<S: Serializer>(date: &Option<Date>, serializer: S) -> Result<S::Ok, S::Error> {
        match date {
            None => serializer.serialize_none(),
            Some(date) => {
                let text = date
                    .format(format_description!("[year]-[month]-[day]"))
                    .map_err(serde::ser::Error::custom)?;
                serializer.serialize_str(&text)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn statuses_are_named_as_they_serialize() {
        for status in OrderStatus::ALL {
            assert_eq!(serde_json::json!(status), status.as_str());
            assert_eq!(OrderStatus::parse(status.as_str()), Ok(status));
        }
        assert_eq!(
            OrderStatus::parse("lost"),
            Err("must be one of received, processing, sent, cancelled".to_owned())
        );
    }

    #[test]
    fn send_date_is_today_or_later() {
        let today = date!(2026 - 11 - 28);
        assert_eq!(parse_send_date("2026-11-28", today), Ok(today));
        assert!(parse_send_date("2026-11-27", today).is_err());
        assert!(parse_send_date("28-11-2026", today).is_err());
        assert!(parse_send_date("2026-02-30", today).is_err());
    }
}
