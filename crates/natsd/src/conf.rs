//! The NATS configuration files of `nats/conf`, embedded so that any binary can write them out
//! wherever it runs, and `write_config`, which does so with the JetStream store moved.

use anyhow::Context as _;
use std::path::{Path, PathBuf};

/// The `authorization` block: one user per component, plus `ops`.
pub(crate) const PERMISSIONS: &str = include_str!("../../../nats/conf/permissions.conf");
/// One server with JetStream.
pub const SINGLE: &str = include_str!("../../../nats/conf/single.conf");
/// The three nodes of a cluster (`nats-1`..`nats-3`).
pub const NODES: [&str; 3] = [
    include_str!("../../../nats/conf/node-1.conf"),
    include_str!("../../../nats/conf/node-2.conf"),
    include_str!("../../../nats/conf/node-3.conf"),
];

/// Writes `permissions.conf` and `main` (one of this module's files) as `nats.conf` into `dir`,
/// with the JetStream store moved to `store_dir`; returns the path of `nats.conf`.
///
/// # Errors
/// When `main` has no `store_dir` line or a file cannot be written.
pub(crate) fn write_config(dir: &Path, main: &str, store_dir: &Path) -> anyhow::Result<PathBuf> {
    let mut replaced = false;
    let text: Vec<String> = main
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("store_dir:") {
                replaced = true;
                format!("  store_dir: {:?}", store_dir.display().to_string())
            } else {
                line.to_owned()
            }
        })
        .collect();
    anyhow::ensure!(replaced, "the NATS configuration has no store_dir line");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("permissions.conf"), PERMISSIONS)
        .with_context(|| format!("writing {}/permissions.conf", dir.display()))?;
    let path = dir.join("nats.conf");
    std::fs::write(&path, text.join("\n") + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::write_config;
    use std::path::Path;

    #[test]
    fn written_configs_keep_everything_but_the_store() {
        let dir = std::env::temp_dir().join(format!("carehub-natsd-{}", std::process::id()));
        let path = write_config(&dir, super::NODES[1], Path::new("/x/y")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("store_dir: \"/x/y\""), "{text}");
        assert!(text.contains("server_name: nats-2"));
        assert!(dir.join("permissions.conf").is_file());
        assert!(write_config(&dir, "port: 1", Path::new("/x")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
