//! `spinewatch user ...` and `spinewatch token ...`: the web UI's accounts and the JSON
//! API's bearer tokens, in the same database as `serve` (`[storage] database_path`, or
//! `<data_dir>/spinewatch.sqlite`; `--config` and `--data-dir` as for `serve`). Safe while
//! `serve` runs: SQLite in WAL mode, and a write waits for the other process's transaction
//! (busy timeout) rather than failing.
//!
//! A password is read from standard input: its first line, without the line break (so
//! `printf '%s' "$PW" | spinewatch user add ...` and a here-string both work). It must have
//! at least 10 characters. A token is printed once, on stdout, and never again (only its
//! SHA-256 is stored).

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use spinewatch_triage::{Role, Store};

use crate::Cli;
use crate::config::{Config, Overrides};

/// `spinewatch user`.
#[derive(Debug, Args)]
pub struct UserArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: UserCommand,
}

/// User subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is the first line of standard input.
    Add {
        /// Sign-in name (unique whatever its case; `system` is reserved).
        name: String,
        /// What they may do: `nurse` (worklist, cases, exports) or `admin` (also the IT
        /// status page).
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
    /// Set a user's password (first line of standard input); their sessions end.
    Passwd {
        /// The user.
        name: String,
    },
    /// Disable a user: no sign-in, sessions and tokens refused; decisions kept.
    Disable {
        /// The user.
        name: String,
    },
    /// List the users.
    List,
}

/// `spinewatch token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: TokenCommand,
}

/// Token subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make an API token for a user and print it (once): send it as
    /// `Authorization: Bearer TOKEN`.
    Create {
        /// Whose token it is (decisions made with it are recorded under this user).
        #[arg(long)]
        user: String,
        /// What it is for, e.g. "FLS register sync".
        #[arg(long)]
        label: Option<String>,
    },
    /// List the tokens (never the tokens themselves).
    List,
    /// Revoke a token by its id (from `token list`).
    Revoke {
        /// The token's id.
        id: i64,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

/// The database `serve` uses.
fn open_store(cli: &Cli) -> anyhow::Result<Store> {
    let config = Config::load(cli.config.as_deref())?.with_overrides(Overrides {
        data_dir: cli.data_dir.as_deref(),
        ..Overrides::default()
    });
    let database = config.storage.database_path();
    Store::open(&database)
        .with_context(|| format!("could not open the database {}", database.display()))
}

/// The first line of `input`, without its line break.
fn read_password(mut input: impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("could not read the password from standard input")?;
    let password = line
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(&line)
        .to_owned();
    spinewatch_web::password::check_new(&password)
        .map_err(|why| anyhow::anyhow!("password refused: {why}"))?;
    Ok(password)
}

fn password_from_stdin() -> anyhow::Result<String> {
    use std::io::IsTerminal;
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("Password (one line; it is shown as you type, so prefer a pipe):");
    }
    read_password(stdin.lock())
}

/// Runs `spinewatch user ...`.
pub fn run_user(cli: &Cli, args: &UserArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(cli)?;
    match &args.command {
        UserCommand::Add { name, role } => {
            let password = password_from_stdin()?;
            let hash = spinewatch_web::password::hash(&password)?;
            let user = store
                .add_user(name, *role, &hash)
                .with_context(|| format!("could not add user {name}"))?;
            println!("user {} added ({})", user.name, user.role);
        }
        UserCommand::Passwd { name } => {
            let password = password_from_stdin()?;
            let hash = spinewatch_web::password::hash(&password)?;
            store
                .set_password(name, &hash)
                .with_context(|| format!("could not set the password of {name}"))?;
            println!("password of {name} set; their sessions have ended");
        }
        UserCommand::Disable { name } => {
            store
                .disable_user(name)
                .with_context(|| format!("could not disable {name}"))?;
            println!("user {name} disabled");
        }
        UserCommand::List => {
            println!("{:<24} {:<6} {:<20} disabled", "name", "role", "created");
            for u in store.users().context("could not list the users")? {
                println!(
                    "{:<24} {:<6} {:<20} {}",
                    u.name,
                    u.role,
                    day_time(u.created_at),
                    u.disabled_at.map(day_time).unwrap_or_else(|| "-".into())
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `spinewatch token ...`.
pub fn run_token(cli: &Cli, args: &TokenArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(cli)?;
    match &args.command {
        TokenCommand::Create { user, label } => {
            let (record, token) = store
                .create_token(user, label.as_deref())
                .with_context(|| format!("could not make a token for {user}"))?;
            eprintln!(
                "token {} for {} made; it is shown once, below (send it as \
                 Authorization: Bearer TOKEN)",
                record.id, record.user
            );
            println!("{token}");
        }
        TokenCommand::List => {
            println!(
                "{:<5} {:<20} {:<20} {:<20} {:<20} label",
                "id", "user", "created", "last used", "revoked"
            );
            for t in store.tokens().context("could not list the tokens")? {
                let when =
                    |t: Option<time::OffsetDateTime>| t.map(day_time).unwrap_or_else(|| "-".into());
                println!(
                    "{:<5} {:<20} {:<20} {:<20} {:<20} {}",
                    t.id,
                    t.user,
                    day_time(t.created_at),
                    when(t.last_used_at),
                    when(t.revoked_at),
                    t.label.unwrap_or_default()
                );
            }
        }
        TokenCommand::Revoke { id } => {
            let revoked = store
                .revoke_token(*id)
                .with_context(|| format!("could not revoke token {id}"))?;
            if revoked {
                println!("token {id} revoked");
            } else {
                println!("token {id} was revoked already");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `2025-03-03 08:00` (UTC).
fn day_time(t: time::OffsetDateTime) -> String {
    const FORMAT: &[time::format_description::FormatItem<'static>] =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    t.format(FORMAT).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn the_password_is_the_first_line_without_its_break() {
        assert_eq!(
            read_password(&b"correct horse\n"[..]).unwrap(),
            "correct horse"
        );
        assert_eq!(
            read_password(&b"correct horse\r\nnext"[..]).unwrap(),
            "correct horse"
        );
        assert_eq!(
            read_password(&b"correct horse"[..]).unwrap(),
            "correct horse"
        );
        assert!(read_password(&b"too short\n"[..]).is_err());
        assert!(read_password(&b""[..]).is_err());
    }
}
