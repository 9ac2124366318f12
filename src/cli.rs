//! The command line: serve, migrate, manage accounts, sweep expired idempotency keys, print the OpenAPI document.

use std::io::Write;

use clap::{Parser, Subcommand};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    api,
    auth::ApiKey,
    config::{Config, DatabaseConfig},
    db,
    domain::validation::text,
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
}

/// Runs the command the arguments name.
pub async fn run(cli: Cli) -> Result<(), Error> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => server::run(Config::from_env()?).await,
        Command::Migrate => migrate().await,
        Command::Accounts {
            command: AccountsCommand::Create { name },
        } => create_account(name).await,
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
    let mut tx = pool.begin().await?;
    let id = db::accounts::insert_with_key(&mut tx, &name, &key.hash).await?;
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
