//! Orders, always scoped by account.

use sqlx::{PgConnection, PgExecutor, types::Json};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{Page, PageRequest};
use crate::domain::{
    address::Address,
    order::{MergeVariables, NewOrder, Order, OrderDetails, OrderStatus},
};

/// An order as it is stored: addresses and merge variables are JSON documents.
struct OrderRow {
    id: Uuid,
    template_id: Uuid,
    template_version: i32,
    recipient: Json<Address>,
    sender: Option<Json<Address>>,
    merge_variables: Json<MergeVariables>,
    send_date: Option<Date>,
    status: OrderStatus,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    row_version: i32,
}

/// `sqlx::query_as!` into an [`OrderRow`], with the order's columns between `$before` and `$after`: the one place
/// they are listed.
macro_rules! query_order {
    ($before:literal, $after:literal, $($arguments:tt)*) => {
        sqlx::query_as!(
            OrderRow,
            $before
                + r#" id, template_id, template_version,
                      recipient AS "recipient: Json<Address>", sender AS "sender: Json<Address>",
                      merge_variables AS "merge_variables: Json<MergeVariables>", send_date,
                      status AS "status: OrderStatus", created_at, updated_at, row_version "#
                + $after,
            $($arguments)*
        )
    };
}

impl From<OrderRow> for Order {
    fn from(row: OrderRow) -> Self {
        Self {
            id: row.id,
            template_id: row.template_id,
            template_version: row.template_version,
            recipient: row.recipient.0,
            sender: row.sender.map(|sender| sender.0),
            merge_variables: row.merge_variables.0,
            send_date: row.send_date,
            status: row.status,
            created_at: row.created_at,
            updated_at: row.updated_at,
            row_version: row.row_version,
        }
    }
}

#[tracing::instrument(skip_all, fields(%account_id, template_id = %new.template_id))]
pub async fn insert(
    db: impl PgExecutor<'_>,
    account_id: Uuid,
    template_version: i32,
    new: &NewOrder,
) -> Result<Order, sqlx::Error> {
    let row = query_order!(
        r#"INSERT INTO orders (id, account_id, template_id, template_version, recipient, sender, merge_variables, send_date,
                              created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
           RETURNING"#,
        "",
        Uuid::now_v7(),
        account_id,
        new.template_id,
        template_version,
        Json(&new.recipient) as _,
        new.sender.as_ref().map(Json) as _,
        Json(&new.merge_variables) as _,
        new.send_date,
        new.taken_at,
    )
    .fetch_one(db)
    .await?;
    Ok(row.into())
}

pub async fn find(
    db: impl PgExecutor<'_>,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<Order>, sqlx::Error> {
    let row = query_order!(
        "SELECT",
        "FROM orders WHERE account_id = $1 AND id = $2",
        account_id,
        id,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(Order::from))
}

/// The order, locked until the transaction ends so that it cannot change under a read-modify-write.
pub async fn find_for_update(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
) -> Result<Option<Order>, sqlx::Error> {
    let row = query_order!(
        "SELECT",
        "FROM orders WHERE account_id = $1 AND id = $2 FOR UPDATE",
        account_id,
        id,
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Order::from))
}

pub async fn list(
    db: impl PgExecutor<'_>,
    account_id: Uuid,
    status: Option<OrderStatus>,
    page: PageRequest,
) -> Result<Page<Order>, sqlx::Error> {
    let rows = query_order!(
        "SELECT",
        r#"FROM orders
           WHERE account_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::uuid IS NULL OR id < $3)
           ORDER BY id DESC
           LIMIT $4"#,
        account_id,
        status.map(OrderStatus::as_str),
        page.starting_after,
        page.limit + 1,
    )
    .fetch_all(db)
    .await?;
    Ok(Page::from_rows(
        rows.into_iter().map(Order::from).collect(),
        page.limit,
    ))
}

#[tracing::instrument(skip_all, fields(%account_id, order_id = %id))]
pub async fn update(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
    next: &OrderDetails,
) -> Result<Order, sqlx::Error> {
    let row = query_order!(
        r#"UPDATE orders
           SET recipient = $3, sender = $4, merge_variables = $5, send_date = $6, updated_at = now(),
               row_version = row_version + 1
           WHERE account_id = $1 AND id = $2
           RETURNING"#,
        "",
        account_id,
        id,
        Json(&next.recipient) as _,
        next.sender.as_ref().map(Json) as _,
        Json(&next.merge_variables) as _,
        next.send_date,
    )
    .fetch_one(conn)
    .await?;
    Ok(row.into())
}

#[tracing::instrument(skip_all, fields(%account_id, order_id = %id))]
pub async fn set_status(
    conn: &mut PgConnection,
    account_id: Uuid,
    id: Uuid,
    status: OrderStatus,
) -> Result<Order, sqlx::Error> {
    let row = query_order!(
        r#"UPDATE orders SET status = $3, updated_at = now(), row_version = row_version + 1
           WHERE account_id = $1 AND id = $2
           RETURNING"#,
        "",
        account_id,
        id,
        status as OrderStatus,
    )
    .fetch_one(conn)
    .await?;
    Ok(row.into())
}
