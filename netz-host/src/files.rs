//! Files the supervisor and the game server write: private folders, and
//! files created without following symbolic links (a link planted in a
//! slot folder cannot redirect a write).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Creates `path` and its missing parents with mode 0700. An existing
/// `path` must be a real folder (not a symbolic link).
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a folder", path.display()),
        ));
    }
    Ok(())
}

/// Opens `path` for appending, creating it with mode 0600; a symbolic link
/// at `path` is refused (`O_NOFOLLOW`).
pub fn open_append_no_follow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// The last non-empty line of the file at `path`, read from at most its
/// last 4 KiB without following a symbolic link, and cut to 300
/// characters: a server's last words for an error message.
pub fn last_line(path: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
    let mut buf = Vec::new();
    f.take(4096).read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let line = text.lines().rev().map(str::trim).find(|l| !l.is_empty())?;
    Some(line.chars().take(300).collect())
}

/// Writes `bytes` to `path` atomically: a fresh temporary file in the same
/// folder (created exclusively, mode 0600, never through a symbolic link),
/// then a rename over the target (which replaces a link, never follows it).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = path.with_file_name(tmp_name);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    let written = f.write_all(bytes);
    drop(f);
    if let Err(e) = written.and_then(|_| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// The user's private folder for netz-host state: `$XDG_RUNTIME_DIR/netz-host`,
/// else `$HOME/.local/state/netz-host`, else `<tmp>/netz-host-<uid>`.
/// (It is not created here.)
pub fn state_dir() -> std::path::PathBuf {
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return Path::new(&d).join("netz-host");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return Path::new(&h).join(".local/state/netz-host");
    }
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("netz-host-{uid}"))
}

/// Where the supervisor listening on `addr` leaves a copy of its API token
/// for the CLI of the same user: `<state_dir>/tokens/<ip>_<port>`.
pub fn token_file_for(addr: std::net::SocketAddr) -> std::path::PathBuf {
    let ip = addr.ip().to_string().replace(':', "-");
    state_dir()
        .join("tokens")
        .join(format!("{ip}_{}", addr.port()))
}

/// A fresh random token: 32 bytes from the kernel, as hex.
pub fn random_token() -> io::Result<String> {
    use std::io::Read;
    let mut b = [0u8; 32];
    File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}
