//! Taking the password out of the environment.
//!
//! `PUBSUB_TUI_PASSWORD` is read once, at start, and its value is then overwritten with NUL
//! bytes in the process's original environment block: the block `/proc/PID/environ` shows
//! (to the same user and to root) for as long as the process runs, and children would inherit.
//! Removing the variable (`std::env::remove_var`) would not do: it edits libc's list of
//! pointers, not the block.
//!
//! The block is overwritten through `/proc/self/mem`, which needs no `unsafe`. It is done
//! before anything else could read the environment concurrently. Where the kernel refuses
//! (a hardened `/proc`), the value stays and the caller says so.

use std::fs::OpenOptions;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::sync::OnceLock;

use crate::config::{PASSWORD_ENV, Password};

/// What was in the variable at start.
static TAKEN: OnceLock<Option<Password>> = OnceLock::new();

/// Read the password variable (once), and erase its value from the environment block.
/// Returns an error only for a failed erase; the password is kept either way.
pub fn take() -> std::io::Result<()> {
    let mut result = Ok(());
    TAKEN.get_or_init(|| {
        let value = std::env::var_os(PASSWORD_ENV)?;
        if let Err(e) = erase_value(PASSWORD_ENV) {
            result = Err(e);
        }
        Some(Password::new(value.to_string_lossy()))
    });
    result
}

/// The password the variable held at start, if [`take`] ran; otherwise read it now.
pub fn password() -> Option<Password> {
    match TAKEN.get() {
        Some(taken) => taken.clone(),
        None => std::env::var(PASSWORD_ENV).ok().map(Password::new),
    }
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

/// Where the environment block is: fields 50 and 51 of `/proc/self/stat`.
fn env_block() -> std::io::Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let (_, rest) = stat
        .rsplit_once(')')
        .ok_or_else(|| invalid("odd /proc/self/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> std::io::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| invalid("no environment fields in /proc/self/stat"))
    };
    Ok((field(50)?, field(51)?))
}

/// Overwrite the value of `name` in the environment block with NUL bytes. Returns whether it
/// was there.
fn erase_value(name: &str) -> std::io::Result<bool> {
    let (start, end) = env_block()?;
    let len = usize::try_from(end.saturating_sub(start)).map_err(|_| invalid("huge block"))?;
    let mut mem = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/proc/self/mem")?;
    mem.seek(SeekFrom::Start(start))?;
    let mut block = vec![0u8; len];
    mem.read_exact(&mut block)?;
    let prefix = format!("{name}=");
    let mut found = false;
    let mut offset = 0u64;
    for entry in block.split(|b| *b == 0) {
        if let Some(value) = entry.strip_prefix(prefix.as_bytes())
            && !value.is_empty()
        {
            mem.seek(SeekFrom::Start(start + offset + prefix.len() as u64))?;
            mem.write_all(&vec![0u8; value.len()])?;
            found = true;
        }
        offset += entry.len() as u64 + 1;
    }
    Ok(found)
}
