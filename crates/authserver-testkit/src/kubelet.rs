//! A Secret volume laid out and updated the way the kubelet's `AtomicWriter` does it, so a test
//! can prove what a pod sees when its Secret changes:
//!
//! ```text
//! dir/..2026_12_04_22_50_01.000000001/users.json   the payload of one version
//! dir/..data -> ..2026_12_04_22_50_01.000000001    swapped by rename(2): atomic
//! dir/users.json -> ..data/users.json              the name the pod opens, never changed
//! ```
//!
//! An update writes a new timestamped directory, points a temporary `..data_tmp` symlink at it,
//! renames that over `..data`, then deletes the old directory, in that order.

use std::os::unix::fs::symlink;
use std::path::PathBuf;

/// A Secret volume in a temp dir (deleted on drop).
pub struct SecretVolume {
    /// Keep alive as long as the volume is needed.
    pub dir: tempfile::TempDir,
    /// The current `..<timestamp>` directory's name.
    current: String,
    versions: u32,
}

impl SecretVolume {
    /// A volume holding `files` (name, content), each visible as `dir/NAME`.
    pub fn new(files: &[(&str, &str)]) -> SecretVolume {
        let dir = tempfile::tempdir().unwrap();
        let mut volume = SecretVolume {
            dir,
            current: String::new(),
            versions: 0,
        };
        volume.current = volume.write_version(files);
        symlink(&volume.current, volume.dir.path().join("..data")).unwrap();
        for (name, _) in files {
            symlink(format!("..data/{name}"), volume.path(name)).unwrap();
        }
        volume
    }

    /// The path a pod opens for `name` (the user-visible symlink).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Replaces the payload as the kubelet does: new version directory, `..data` swapped by
    /// renaming a temporary symlink over it, the old version directory removed.
    pub fn update(&mut self, files: &[(&str, &str)]) {
        let next = self.write_version(files);
        let tmp = self.dir.path().join("..data_tmp");
        symlink(&next, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.path().join("..data")).unwrap();
        let old = std::mem::replace(&mut self.current, next);
        std::fs::remove_dir_all(self.dir.path().join(old)).unwrap();
    }

    /// The name of the directory `..data` points at now.
    pub fn data_target(&self) -> PathBuf {
        std::fs::read_link(self.dir.path().join("..data")).unwrap()
    }

    fn write_version(&mut self, files: &[(&str, &str)]) -> String {
        self.versions += 1;
        // The kubelet's format: ..YYYY_MM_DD_HH_MM_SS.<nanoseconds>; unique per update here.
        let name = format!(
            "..2026_12_04_22_50_{:02}.{:09}",
            self.versions % 60,
            self.versions
        );
        let version = self.dir.path().join(&name);
        std::fs::create_dir(&version).unwrap();
        for (file, content) in files {
            std::fs::write(version.join(file), content).unwrap();
        }
        name
    }
}
