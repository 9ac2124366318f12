//! Orders, always scoped by account.

use sqlx::{PgConnection, PgExecutor, types::Json};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{Page, PageRequest};
use crate::domain::{
    address::Address,
    merge::MergeVariables,
    metadata::Metadata,
    order::{NewOrder, Order, OrderStatus},
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
    metadata: Json<Metadata>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    row_version: i32,
}

/// `sqlx::query_as!` into an [`OrderRow`], in one of four forms that spell the columns of `orders` once (the last
/// arm lists them):
/// - `$before, $after`: a statement with every column as it is read between `$before` and `$after` (literals
///   joined by `+`);
/// - `INSERT $values`: an insert of the row that `$values` gives (`id, account_id, template_id`, the editable
///   columns, `created_at, updated_at`), returning it;
/// - `INSERT UNNEST $arrays`: an insert of the rows `unnest$arrays` gives (`id, template_id`, the editable columns,
///   `taken_at`) for the account `$1`, in the order of their ids, returning them;
/// - `UPDATE $set`: `UPDATE orders SET (` the editable columns `) = $set`, returning the row.
macro_rules! query_order {
    (@ $editable:literal, $read:literal, INSERT UNNEST $arrays:literal, $($arguments:tt)*) => {
        sqlx::query_as!(
            OrderRow,
            "INSERT INTO orders (id, account_id, template_id, " + $editable + ", created_at, updated_at) "
                + "SELECT id, $1, template_id, " + $editable + ", taken_at, taken_at "
                + "FROM unnest" + $arrays + " AS new (id, template_id, " + $editable + ", taken_at) "
                + "ORDER BY id RETURNING " + $read,
            $($arguments)*
        )
    };
    (@ $editable:literal, $read:literal, INSERT $values:literal, $($arguments:tt)*) => {
        sqlx::query_as!(
            OrderRow,
            "INSERT INTO orders (id, account_id, template_id, " + $editable + ", created_at, updated_at) "
                + $values + " RETURNING " + $read,
            $($arguments)*
        )
    };
    (@ $editable:literal, $read:literal, UPDATE $set:literal, $($arguments:tt)*) => {
        sqlx::query_as!(
            OrderRow,
            "UPDATE orders SET (" + $editable + ") = " + $set + " RETURNING " + $read,
            $($arguments)*
        )
    };
    (@ $editable:literal, $read:literal, $before:literal, $after:literal $(+ $more:literal)*, $($arguments:tt)*) => {
        sqlx::query_as!(OrderRow, $before + " " + $read + " " + $after $(+ $more)*, $($arguments)*)
    };
    // The columns: those a PATCH edits, then every column as a row is read.
    ($($form:tt)*) => {
        query_order!(
            @
            "template_version, recipient, sender, merge_variables, send_date, metadata",
            r#"id, template_id, template_version,
               recipient AS "recipient: Json<Address>", sender AS "sender: Json<Address>",
               merge_variables AS "merge_variables: Json<MergeVariables>", send_date,
               status AS "status: OrderStatus", metadata AS "metadata: Json<Metadata>", created_at,
               updated_at, row_version"#,
            $($form)*
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
            metadata: row.metadata.0,
            created_at: row.created_at,
            updated_at: row.updated_at,
            row_version: row.row_version,
        }
    }
}

/// Writes an order taken against `template_version` of its template; `None` when that version is gone (deleted
/// with its template since it was read), which the foreign key `orders_template_version_fkey` tells.
#[tracing::instrument(skip_all, fields(%account_id, template_id = %new.template_id))]
pub async fn insert(
    db: impl PgExecutor<'_>,
    account_id: Uuid,
    template_version: i32,
    new: &NewOrder,
) -> Result<Option<Order>, sqlx::Error> {
    let row = query_order!(
        INSERT "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        Uuid::now_v7(),
        account_id,
        new.template_id,
        template_version,
        Json(&new.recipient) as _,
        new.sender.as_ref().map(Json) as _,
        Json(&new.merge_variables) as _,
        new.send_date,
        Json(&new.metadata) as _,
        new.taken_at,
    )
    .fetch_one(db)
    .await;
    unless_version_gone(row.map(Some))
}

/// The written order, or `None` when the foreign key `orders_template_version_fkey` found its template version gone
/// (deleted with its template since it was read).
fn unless_version_gone(
    row: Result<Option<OrderRow>, sqlx::Error>,
) -> Result<Option<Order>, sqlx::Error> {
    match row {
        Ok(row) => Ok(row.map(Order::from)),
        Err(error)
            if super::violated_constraint(&error) == Some("orders_template_version_fkey") =>
        {
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// Writes an order taken against the latest version of its template, which the same statement reads, provided the
/// order's merge variables cover that version's merge fields: one round trip, and atomic without a transaction.
/// `None` when nothing was written: there is no such template (or it was deleted meanwhile, which the foreign key
/// `orders_template_version_fkey` tells), or a merge field lacks a variable; [`super::template_versions::
/// find_for_order`] tells which.
///
/// The account, template and version written are the version row's own columns, so that on Citus the statement is
/// an `INSERT ... SELECT` within one shard of co-located tables.
#[tracing::instrument(skip_all, fields(%account_id, template_id = %new.template_id))]
pub async fn insert_at_latest_version(
    db: impl PgExecutor<'_>,
    account_id: Uuid,
    new: &NewOrder,
) -> Result<Option<Order>, sqlx::Error> {
    let variables: Vec<&str> = new.merge_variables.keys().map(String::as_str).collect();
    let row = query_order!(
        INSERT r#"SELECT $1, v.account_id, v.template_id, v.version, $4, $5, $6, $7, $8, $9, $9
                  FROM templates t
                  JOIN template_versions v
                    ON v.account_id = t.account_id AND v.template_id = t.id AND v.version = t.version
                  WHERE t.account_id = $2 AND v.account_id = $2 AND t.id = $3 AND v.merge_fields <@ $10"#,
        Uuid::now_v7(),
        account_id,
        new.template_id,
        Json(&new.recipient) as _,
        new.sender.as_ref().map(Json) as _,
        Json(&new.merge_variables) as _,
        new.send_date,
        Json(&new.metadata) as _,
        new.taken_at,
        &variables as &[&str],
    )
    .fetch_optional(db)
    .await;
    unless_version_gone(row)
}

/// Inserts many orders, each with the template version it is taken at, in one statement (`INSERT ... SELECT FROM
/// unnest(...)`), in the order given.
#[tracing::instrument(skip_all, fields(%account_id, orders = orders.len()))]
pub async fn insert_many(
    conn: &mut PgConnection,
    account_id: Uuid,
    orders: &[(i32, &NewOrder)],
) -> Result<Vec<Order>, sqlx::Error> {
    let ids: Vec<Uuid> = orders.iter().map(|_| Uuid::now_v7()).collect();
    let template_ids: Vec<Uuid> = orders.iter().map(|(_, o)| o.template_id).collect();
    let versions: Vec<i32> = orders.iter().map(|(version, _)| *version).collect();
    let recipients: Vec<Json<&Address>> = orders.iter().map(|(_, o)| Json(&o.recipient)).collect();
    let senders: Vec<Option<Json<&Address>>> = orders
        .iter()
        .map(|(_, o)| o.sender.as_ref().map(Json))
        .collect();
    let merge_variables: Vec<Json<&MergeVariables>> = orders
        .iter()
        .map(|(_, o)| Json(&o.merge_variables))
        .collect();
    let send_dates: Vec<Option<Date>> = orders.iter().map(|(_, o)| o.send_date).collect();
    let metadata: Vec<Json<&Metadata>> = orders.iter().map(|(_, o)| Json(&o.metadata)).collect();
    let taken_at: Vec<OffsetDateTime> = orders.iter().map(|(_, o)| o.taken_at).collect();
    let inserted = query_order!(
        INSERT UNNEST
        r#"($2::uuid[], $3::uuid[], $4::int4[], $5::jsonb[], $6::jsonb[], $7::jsonb[], $8::date[], $9::jsonb[],
            $10::timestamptz[])"#,
        account_id,
        &ids,
        &template_ids,
        &versions,
        recipients as _,
        senders as _,
        merge_variables as _,
        send_dates as _,
        metadata as _,
        &taken_at,
    )
    .fetch_all(conn)
    .await?;
    let mut by_id: std::collections::HashMap<Uuid, Order> = inserted
        .into_iter()
        .map(|row| (row.id, Order::from(row)))
        .collect();
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
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

/// Which orders a list shows.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub status: Option<OrderStatus>,
    pub template_id: Option<Uuid>,
    /// Key/value pairs the order's metadata must all have; empty for any.
    pub metadata: Metadata,
}

/// `query_order!` for a page of orders: `$1` the account, ids between `$2` and `$3`, `$4` the status or any, `$5`
/// the template or any, then `$and` and `$order`, which ends with `LIMIT $6`.
macro_rules! query_order_page {
    ($and:literal, $order:literal, $($arguments:tt)*) => {
        query_order!(
            "SELECT",
            r#"FROM orders
               WHERE account_id = $1 AND id BETWEEN $2 AND $3 AND ($4::text IS NULL OR status = $4)
                 AND ($5::uuid IS NULL OR template_id = $5) "#
                + $and
                + $order,
            $($arguments)*
        )
    };
}

/// A page of orders, newest first.
///
/// A metadata filter is its own statement, `metadata @> $7`, so that its plan (prepared once per connection, and
/// generic after five runs) always uses the GIN index `orders_account_id_metadata_idx`, and the plan of a list
/// without one never does.
pub async fn list(
    db: impl PgExecutor<'_>,
    account_id: Uuid,
    page: &PageRequest<Uuid, OrderFilter>,
) -> Result<Page<Order>, sqlx::Error> {
    let filter = &page.filter;
    let (keys, fetch) = (page.keys, page.fetch());
    let status = filter.status.map(OrderStatus::as_str);
    let template_id = filter.template_id;
    let metadata = Json(&filter.metadata);
    let rows = match (filter.metadata.is_empty(), page.backward) {
        (true, false) => {
            query_order_page!(
                "",
                "ORDER BY id DESC LIMIT $6",
                account_id,
                keys.lowest,
                keys.highest,
                status,
                template_id,
                fetch
            )
            .fetch_all(db)
            .await?
        }
        (true, true) => {
            query_order_page!(
                "",
                "ORDER BY id LIMIT $6",
                account_id,
                keys.lowest,
                keys.highest,
                status,
                template_id,
                fetch
            )
            .fetch_all(db)
            .await?
        }
        (false, false) => {
            query_order_page!(
                "AND metadata @> $7 ",
                "ORDER BY id DESC LIMIT $6",
                account_id,
                keys.lowest,
                keys.highest,
                status,
                template_id,
                fetch,
                metadata as _
            )
            .fetch_all(db)
            .await?
        }
        (false, true) => {
            query_order_page!(
                "AND metadata @> $7 ",
                "ORDER BY id LIMIT $6",
                account_id,
                keys.lowest,
                keys.highest,
                status,
                template_id,
                fetch,
                metadata as _
            )
            .fetch_all(db)
            .await?
        }
    };
    Ok(page.page(rows))
}

/// Writes the editable members of `next`, the order as a PATCH left it ([`OrderChanges::apply_to`]).
///
/// [`OrderChanges::apply_to`]: crate::domain::order::OrderChanges::apply_to
#[tracing::instrument(skip_all, fields(%account_id, order_id = %next.id))]
pub async fn update(
    conn: &mut PgConnection,
    account_id: Uuid,
    next: &Order,
) -> Result<Order, sqlx::Error> {
    let row = query_order!(
        UPDATE r#"($3, $4, $5, $6, $7, $8), updated_at = now(), row_version = row_version + 1
                  WHERE account_id = $1 AND id = $2"#,
        account_id,
        next.id,
        next.template_version,
        Json(&next.recipient) as _,
        next.sender.as_ref().map(Json) as _,
        Json(&next.merge_variables) as _,
        next.send_date,
        Json(&next.metadata) as _,
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
