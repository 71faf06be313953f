//! Finding the `redis-server` binary.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The environment variable that overrides where `redis-server` is found.
pub const REDIS_SERVER_BIN: &str = "REDIS_SERVER_BIN";

/// Finds `redis-server`: the path in `REDIS_SERVER_BIN` when it is set and not
/// empty, else the first executable `redis-server` on `PATH`.
///
/// Sentinels run the same binary with `--sentinel`, so no `redis-sentinel`
/// binary is needed.
///
/// # Errors
///
/// [`Error::BinaryNotFound`], whose message says how to install it, when
/// neither gives an executable file. Tests should fail with it rather than
/// skip.
pub fn redis_server_binary() -> Result<PathBuf> {
    locate(
        std::env::var_os(REDIS_SERVER_BIN),
        std::env::var_os("PATH").as_deref(),
    )
}

fn locate(env_value: Option<OsString>, path: Option<&OsStr>) -> Result<PathBuf> {
    if let Some(value) = env_value.filter(|value| !value.is_empty()) {
        let candidate = PathBuf::from(value);
        return if is_executable(&candidate) {
            Ok(candidate)
        } else {
            Err(Error::BinaryNotFound {
                env_value: Some(candidate),
            })
        };
    }
    path.iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| is_executable(candidate))
        .ok_or(Error::BinaryNotFound { env_value: None })
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_names_the_install_command() {
        let Err(err) = locate(None, Some(OsStr::new("/nonexistent-dir"))) else {
            panic!("found a redis-server in a directory that does not exist");
        };
        assert_eq!(
            err.to_string(),
            "redis-server not found on PATH (set REDIS_SERVER_BIN or install it: sudo apt-get install -y redis-server redis-sentinel)"
        );
        assert!(locate(None, None).is_err());
    }

    #[test]
    fn env_override_wins_and_is_checked() {
        let Err(err) = locate(
            Some(OsString::from("/nonexistent/redis-server")),
            std::env::var_os("PATH").as_deref(),
        ) else {
            panic!("accepted a REDIS_SERVER_BIN that does not exist");
        };
        let message = err.to_string();
        assert!(
            message.starts_with(
                "REDIS_SERVER_BIN=/nonexistent/redis-server is not an executable file"
            ),
            "{message}"
        );
        assert!(message.contains("apt-get install"), "{message}");
    }

    #[test]
    fn empty_env_value_falls_back_to_path() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|err| Error::io("tempdir", err))?;
        let fake = dir.path().join("redis-server");
        std::fs::write(&fake, "#!/bin/sh\n").map_err(|err| Error::io("write", err))?;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755))
            .map_err(|err| Error::io("chmod", err))?;
        let found = locate(Some(OsString::new()), Some(dir.path().as_os_str()))?;
        assert_eq!(found, fake);
        Ok(())
    }
}
