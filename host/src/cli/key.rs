//! `wasmq key create|revoke`: manage API keys in the store directly (no server needed).

use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::queue::{DEFAULT_TENANT, Scope};

/// `wasmq key …`.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// PostgreSQL URL of the store; without one, the embedded store under `--data-dir`.
    #[arg(long, env = "WASMQ_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Directory of the embedded store (used when no database URL is given).
    #[arg(
        long,
        env = "WASMQ_DATA_DIR",
        default_value = "./wasmq-data",
        global = true
    )]
    pub data_dir: std::path::PathBuf,
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Create a key and print it on stdout (and nothing else there). Store it now: only its
    /// hash is kept.
    Create {
        /// The tenant the key acts for.
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
        /// A scope to grant: admin, modules:write, jobs:write, jobs:read, metrics, operator
        /// (every tenant's quotas). Repeat for more; none grants all but operator.
        #[arg(long = "scope", value_parser = parse_scope)]
        scopes: Vec<Scope>,
        /// A note saying what the key is for.
        #[arg(long)]
        name: Option<String>,
    },
    /// Revoke key ID (the part after `wq_`, before the second `_`).
    Revoke {
        /// The key id.
        id: String,
        /// The key's tenant.
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    s.parse()
        .map_err(|e: crate::queue::StoreError| e.to_string())
}

pub(super) async fn run(args: KeyArgs) -> anyhow::Result<ExitCode> {
    let store = super::StoreChoice::from_args(args.database_url.as_deref(), &args.data_dir)
        .open(2)
        .await?;
    match args.command {
        KeyCommand::Create {
            tenant,
            scopes,
            name,
        } => {
            let scopes = if scopes.is_empty() {
                Scope::DEFAULT.to_vec()
            } else {
                scopes
            };
            let key = store.create_key(&tenant, name.as_deref(), &scopes).await?;
            eprintln!(
                "created key {} for tenant `{tenant}` with scopes {}",
                key.id,
                scopes
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            println!("{}", key.key);
            Ok(ExitCode::SUCCESS)
        }
        KeyCommand::Revoke { id, tenant } => {
            if store.revoke_key(&tenant, &id).await? {
                eprintln!("revoked key {id}");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("tenant `{tenant}` has no active key {id}");
                Ok(ExitCode::from(1))
            }
        }
    }
}
