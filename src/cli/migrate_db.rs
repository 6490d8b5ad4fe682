//! `agent-vault migrate-db --to postgres://… [--dry-run]` (an addition to the seed): copies
//! this machine's SQLite instance into an empty PostgreSQL database, with the server stopped.
//! Rows are copied as stored, so the same master password unlocks the copy and every sealed
//! value opens as before; the CA goes into the database (replicas share no disk).

use anyhow::bail;
use clap::Args;

use super::output;
use crate::paths::Paths;
use crate::server::pidfile;
use crate::store::{Location, Store, copy};

#[derive(Args)]
pub struct MigrateDbArgs {
    /// The empty PostgreSQL database to copy into (postgres://user:password@host:5432/dbname)
    #[arg(long, value_name = "URL")]
    to: String,
    /// Print what would be copied, and check the target is empty, without writing anything
    #[arg(long)]
    dry_run: bool,
}

pub fn run(args: MigrateDbArgs) -> anyhow::Result<()> {
    let paths = Paths::from_env()?;
    if let Some(pid) = pidfile::running_server(&paths) {
        bail!("the server is running (PID {pid}); stop it first with `agent-vault server stop`");
    }
    let Location::Postgres(url) = Location::parse_url(args.to.trim())? else {
        bail!("--to must be a PostgreSQL URL");
    };
    let target = crate::store::pg::redacted(&url);
    let db = paths.database();
    if !db.exists() {
        bail!(
            "no agent-vault data at {}; there is nothing to migrate",
            db.display()
        );
    }
    let source = Store::open(&db)?;
    let counts = copy::row_counts(&source)?;
    let ca = crate::ca::files_in(&paths.ca_dir())?;
    if !copy::target_is_empty(&url)? {
        bail!(
            "the database at {target} is not empty; migrate-db copies only into an empty database (create one with `createdb`, or drop what is there)"
        );
    }
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    if args.dry_run {
        println!("Would copy from {} to {target}:", db.display());
        for (table, n) in &counts {
            println!("  {table:<22} {n:>8} rows");
        }
        println!(
            "  {:<22} {:>8}",
            "CA (certificate, key)",
            if ca.is_some() { "yes" } else { "none yet" }
        );
        println!("{total} rows in all. Nothing was written.");
        return Ok(());
    }
    let copied = Store::open_postgres(&url).and_then(|pg| copy::copy_all(&source, &pg, ca));
    if let Err(e) = copied {
        let cleanup = copy::drop_copied_schema(&url);
        let mut message = format!("the copy to {target} failed and was undone: {e}");
        if let Err(c) = cleanup {
            message.push_str(&format!(
                "; removing the tables it created also failed ({c}): drop them before retrying"
            ));
        }
        return Err(anyhow::anyhow!(message));
    }
    output::success(format!(
        "Copied {total} rows from {} to {target}.",
        db.display()
    ));
    println!(
        "Serve it with: AGENT_VAULT_DATABASE_URL='{target}' agent-vault server (same master password). The SQLite file is left as it was."
    );
    Ok(())
}
