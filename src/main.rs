use std::process::ExitCode;

use clap::Parser;
use order_intake::{cli, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    // A missing .env is fine: the environment alone may configure everything.
    let _ = dotenvy::dotenv();
    let cli = cli::Cli::parse();
    if let Err(error) = telemetry::init() {
        eprintln!("{error}");
        return ExitCode::from(2);
    }
    match cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("order-intake: {error}");
            ExitCode::FAILURE
        }
    }
}
