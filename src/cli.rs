//! The command line: serve, migrate, manage accounts and their API keys, sweep expired idempotency keys, print the
//! OpenAPI document.

use std::io::Write;

use clap::{Parser, Subcommand};
use serde::Serialize;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    api,
    config::{Config, DatabaseConfig},
    db::{self, api_keys::ApiKeyInfo},
    domain::input::validation::text,
    http::auth::ApiKey,
    idempotency::sweeper::{self, Sweep},
    server,
};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Print-and-mail orders and templates over HTTP, with exactly-once POST and PATCH.
#[derive(Debug, Parser)]
#[command(name = "order-intake", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Apply the database migrations (the same files `sqlx migrate run` applies).
    Migrate,
    /// Manage accounts.
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
    /// Manage the API keys of accounts: several may be live at once, so that a key is rotated without downtime.
    ApiKeys {
        #[command(subcommand)]
        command: ApiKeysCommand,
    },
    /// Delete expired idempotency keys once, and print how many were deleted.
    Sweep,
    /// Print the OpenAPI document (needs no database).
    Openapi,
}

#[derive(Debug, Subcommand)]
enum AccountsCommand {
    /// Create an account with an API key; prints {"id", "name", "api_key"} as JSON. The key is shown only here.
    Create {
        /// The account's name, 1 to 200 characters.
        #[arg(long)]
        name: String,
    },
    /// Print every account, oldest first, one JSON object a line: id, name, created_at, live_api_keys.
    List,
}

#[derive(Debug, Subcommand)]
enum ApiKeysCommand {
    /// Add a key to an account; prints {"id", "account_id", "api_key"} as JSON. The key is shown only here.
    Create {
        /// The account's id.
        #[arg(long)]
        account: Uuid,
    },
    /// Print the account's keys, oldest first, one JSON object a line: id, prefix, created_at, last_used_at (up to a
    /// minute behind), revoked_at. Never the secret.
    List {
        /// The account's id.
        #[arg(long)]
        account: Uuid,
    },
    /// Revoke a key: every server refuses it (401) within API_KEY_CACHE_SECONDS (default 5), the time it keeps a key it
    /// checked. Prints the key as `list` does; revoking again keeps the first revocation time.
    Revoke {
        /// The key's id, as `create` and `list` print it.
        key_id: Uuid,
    },
}

/// Runs the command the arguments name.
pub async fn run(cli: Cli) -> Result<(), Error> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => server::run(Config::from_env()?).await,
        Command::Migrate => migrate().await,
        Command::Accounts {
            command: AccountsCommand::Create { name },
        } => create_account(name).await,
        Command::Accounts {
            command: AccountsCommand::List,
        } => list_accounts().await,
        Command::ApiKeys { command } => api_keys(command).await,
        Command::Sweep => sweep().await,
        Command::Openapi => {
            writeln!(std::io::stdout(), "{}", api::openapi().to_pretty_json()?)?;
            Ok(())
        }
    }
}

async fn sweep() -> Result<(), Error> {
    let pool = db::pool(&DatabaseConfig::from_env()?, db::Sessions::Maintenance)?;
    let deleted =
        match sweeper::sweep_once(&pool, sweeper::MAX_BATCH, &CancellationToken::new()).await? {
            Sweep::Done { deleted, .. } => deleted,
            Sweep::Skipped => {
                return Err("another process is sweeping right now; try again later".into());
            }
        };
    writeln!(std::io::stdout(), "{deleted}")?;
    Ok(())
}

async fn migrate() -> Result<(), Error> {
    db::migrate(&DatabaseConfig::from_env()?).await?;
    tracing::info!("migrations applied");
    Ok(())
}

/// What `accounts create` prints.
#[derive(Serialize)]
struct CreatedAccount {
    id: Uuid,
    name: String,
    api_key: String,
}

async fn create_account(name: String) -> Result<(), Error> {
    let name = text(name, 200).map_err(|reason| format!("invalid --name: {reason}"))?;
    let pool = db::pool(&DatabaseConfig::from_env()?, db::Sessions::Maintenance)?;
    let key = ApiKey::generate()?;
    let mut tx = db::Begin::default().begin(&pool).await?;
    let id = db::accounts::insert_with_key(&mut tx, &name, &key.hash, key.prefix()).await?;
    tx.commit().await?;
    let created = CreatedAccount {
        id,
        name,
        api_key: key.secret,
    };
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer(&mut stdout, &created)?;
    writeln!(stdout)?;
    Ok(())
}

/// What `accounts list` prints for an account; `created_at` in RFC 3339.
#[derive(Serialize)]
struct ListedAccount {
    id: Uuid,
    name: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    live_api_keys: i64,
}

async fn list_accounts() -> Result<(), Error> {
    let pool = db::pool(&DatabaseConfig::from_env()?, db::Sessions::Maintenance)?;
    let mut stdout = std::io::stdout().lock();
    for account in db::accounts::list(&pool).await? {
        let listed = ListedAccount {
            id: account.id,
            name: account.name,
            created_at: account.created_at,
            live_api_keys: account.live_api_keys,
        };
        serde_json::to_writer(&mut stdout, &listed)?;
        writeln!(stdout)?;
    }
    Ok(())
}

/// What `api-keys create` prints.
#[derive(Serialize)]
struct CreatedApiKey {
    id: Uuid,
    account_id: Uuid,
    api_key: String,
}

/// What `api-keys list` and `api-keys revoke` print for a key; times in RFC 3339.
#[derive(Serialize)]
struct ListedApiKey {
    id: Uuid,
    prefix: Option<String>,
    #[serde(with = "crate::domain::timestamp")]
    created_at: OffsetDateTime,
    #[serde(with = "crate::domain::timestamp::option")]
    last_used_at: Option<OffsetDateTime>,
    #[serde(with = "crate::domain::timestamp::option")]
    revoked_at: Option<OffsetDateTime>,
}

impl From<ApiKeyInfo> for ListedApiKey {
    fn from(key: ApiKeyInfo) -> Self {
        Self {
            id: key.id,
            prefix: key.prefix,
            created_at: key.created_at,
            last_used_at: key.last_used_at,
            revoked_at: key.revoked_at,
        }
    }
}

async fn api_keys(command: ApiKeysCommand) -> Result<(), Error> {
    let pool = db::pool(&DatabaseConfig::from_env()?, db::Sessions::Maintenance)?;
    let mut stdout = std::io::stdout().lock();
    match command {
        ApiKeysCommand::Create { account } => {
            let key = ApiKey::generate()?;
            let mut tx = db::Begin::default().begin(&pool).await?;
            if !db::accounts::exists(&mut *tx, account).await? {
                return Err(format!("no account {account}").into());
            }
            let id = db::api_keys::insert(&mut *tx, account, &key.hash, key.prefix()).await?;
            tx.commit().await?;
            let created = CreatedApiKey {
                id,
                account_id: account,
                api_key: key.secret,
            };
            serde_json::to_writer(&mut stdout, &created)?;
            writeln!(stdout)?;
        }
        ApiKeysCommand::List { account } => {
            if !db::accounts::exists(&pool, account).await? {
                return Err(format!("no account {account}").into());
            }
            for key in db::api_keys::list(&pool, account).await? {
                serde_json::to_writer(&mut stdout, &ListedApiKey::from(key))?;
                writeln!(stdout)?;
            }
        }
        ApiKeysCommand::Revoke { key_id } => {
            let mut conn = pool.acquire().await?;
            let key = db::api_keys::revoke(&mut conn, key_id)
                .await?
                .ok_or_else(|| format!("no API key {key_id}"))?;
            serde_json::to_writer(&mut stdout, &ListedApiKey::from(key))?;
            writeln!(stdout)?;
        }
    }
    Ok(())
}
