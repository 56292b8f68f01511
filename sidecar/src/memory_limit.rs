//! The memory budget when `limits.memory` is not set: 64 MiB, or less when
//! the container has a hard memory limit that would not hold that much.
//!
//! Peak RSS stays within the budget plus [`HEADROOM`] (BENCHMARKS.md,
//! "Memory"). A log router given a hard limit below 80 MiB (ECS task
//! definitions often give the router 50 or 64) would be OOM-killed in a
//! burst with the default budget, losing what the spool did not hold.

use std::path::Path;

/// `limits.memory` when nothing else applies.
pub const DEFAULT_BUDGET: u64 = 64 << 20;
/// What the budget leaves out (code, stacks, the allocator's free pages):
/// peak RSS stays within the budget plus this.
pub const HEADROOM: u64 = 16 << 20;
/// The least budget picked from a container limit: below it a burst would
/// be read a few frames at a time.
pub const MIN_BUDGET: u64 = 8 << 20;

/// The budget, and what to log about how it was chosen.
#[derive(Debug, PartialEq, Eq)]
pub struct Budget {
    pub bytes: u64,
    pub note: Option<Note>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Note {
    /// The default was lowered to fit the container's limit.
    Lowered { container_limit: u64 },
    /// The configured budget and its headroom exceed the container's
    /// limit: a burst may be OOM-killed.
    ConfiguredAboveLimit { container_limit: u64 },
}

/// The budget from `limits.memory` (`configured`) and the container's hard
/// memory limit, when it has one. A configured value is kept as it is.
pub fn budget(configured: Option<u64>, container_limit: Option<u64>) -> Budget {
    match (configured, container_limit) {
        (Some(bytes), Some(limit)) if bytes.saturating_add(HEADROOM) > limit => Budget {
            bytes,
            note: Some(Note::ConfiguredAboveLimit {
                container_limit: limit,
            }),
        },
        (Some(bytes), _) => Budget { bytes, note: None },
        (None, Some(limit)) if DEFAULT_BUDGET + HEADROOM > limit => Budget {
            bytes: limit.saturating_sub(HEADROOM).max(MIN_BUDGET),
            note: Some(Note::Lowered {
                container_limit: limit,
            }),
        },
        (None, _) => Budget {
            bytes: DEFAULT_BUDGET,
            note: None,
        },
    }
}

/// The hard memory limit this process runs under: the least limit of its
/// memory cgroup and the cgroups above it, read under `mount`
/// (`/sys/fs/cgroup`), with `self_cgroup` the text of `/proc/self/cgroup`.
/// cgroup v2's `memory.max` (line `0::/path`), else v1's
/// `memory/memory.limit_in_bytes` (the line naming `memory`). A container
/// usually sees its own cgroup at the mount's root, and a host process the
/// whole tree, where its own directory is found by its path. `None` when
/// no limit is set (`max`, or v1's page-rounded `i64::MAX`) or none can be
/// read.
pub fn container_limit(mount: &Path, self_cgroup: &str) -> Option<u64> {
    let line = |want: fn(&str) -> bool| {
        self_cgroup.lines().find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            want(controllers).then_some(path)
        })
    };
    // v1's memory controller first: on a hybrid host the v2 line is there
    // too, for a hierarchy without it.
    let v1 = line(|controllers| controllers.split(',').any(|c| c == "memory"));
    let (base, path, file) = match v1 {
        Some(path) => (mount.join("memory"), path, "memory.limit_in_bytes"),
        None => (mount.to_path_buf(), line(str::is_empty)?, "memory.max"),
    };
    // From the process's own cgroup up to the mount's root: a directory
    // that is not there (a container's view) is skipped.
    let mut dirs = vec![base.clone()];
    let mut dir = base;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        dir = dir.join(part);
        dirs.push(dir.clone());
    }
    dirs.iter()
        .filter_map(|dir| std::fs::read_to_string(dir.join(file)).ok())
        .filter_map(|text| text.trim().parse::<u64>().ok())
        // v1 writes "no limit" as the largest page multiple below i64::MAX.
        .filter(|&bytes| bytes < 1 << 62)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn the_default_fits_under_a_container_limit() {
        let lowered = |limit| Budget {
            bytes: limit - HEADROOM,
            note: Some(Note::Lowered {
                container_limit: limit,
            }),
        };
        assert_eq!(budget(None, None).bytes, 64 * MIB);
        assert_eq!(budget(None, Some(512 * MIB)).bytes, 64 * MIB);
        assert_eq!(budget(None, Some(80 * MIB)).bytes, 64 * MIB);
        assert_eq!(budget(None, Some(80 * MIB - 1)), lowered(80 * MIB - 1));
        assert_eq!(budget(None, Some(64 * MIB)), lowered(64 * MIB));
        assert_eq!(budget(None, Some(50 * MIB)).bytes, 34 * MIB);
        // A tiny limit still leaves a budget to read with.
        assert_eq!(budget(None, Some(20 * MIB)).bytes, 8 * MIB);
    }

    #[test]
    fn a_configured_budget_is_kept_and_warned_about_when_too_big() {
        assert_eq!(
            budget(Some(32 * MIB), Some(64 * MIB)),
            Budget {
                bytes: 32 * MIB,
                note: None
            }
        );
        assert_eq!(
            budget(Some(64 * MIB), Some(64 * MIB)),
            Budget {
                bytes: 64 * MIB,
                note: Some(Note::ConfiguredAboveLimit {
                    container_limit: 64 * MIB
                })
            }
        );
        assert_eq!(budget(Some(200 * MIB), None).bytes, 200 * MIB);
    }

    #[test]
    fn the_limit_is_read_from_cgroup_v2_or_v1() {
        let tmp = tempfile::Builder::new()
            .prefix("sluice-cgroup-")
            .tempdir()
            .unwrap();
        let dir = tmp.path();
        let write = |file: &str, text: &str| {
            let path = dir.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        // As a hybrid host lists them: v2's line last, for a hierarchy
        // without the memory controller.
        let v1 = "4:memory:/ecs/task/app\n3:cpuset:/\n0::/\n";
        let v2 = "0::/ecs/task/app\n";
        assert_eq!(container_limit(dir, v2), None, "nothing to read");
        assert_eq!(container_limit(dir, ""), None, "no cgroup");

        // A container's view: its own cgroup at the mount's root.
        write("memory.max", "max\n");
        assert_eq!(container_limit(dir, v2), None, "v2 without a limit");
        write("memory.max", "67108864\n");
        assert_eq!(container_limit(dir, v2), Some(64 * MIB));
        write("memory/memory.limit_in_bytes", "9223372036854771712\n");
        assert_eq!(container_limit(dir, v1), None, "v1 without a limit");
        write("memory/memory.limit_in_bytes", "134217728\n");
        assert_eq!(container_limit(dir, v1), Some(128 * MIB));

        // The whole tree: the least limit on the way from the root.
        write("ecs/task/memory.max", "104857600\n");
        write("ecs/task/app/memory.max", "max\n");
        assert_eq!(
            container_limit(dir, v2),
            Some(64 * MIB),
            "the root's is least"
        );
        write("memory.max", "max\n");
        assert_eq!(container_limit(dir, v2), Some(100 * MIB), "the task's");
        write("memory/ecs/task/app/memory.limit_in_bytes", "52428800\n");
        assert_eq!(container_limit(dir, v1), Some(50 * MIB));
    }
}
