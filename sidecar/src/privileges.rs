//! Leaving root once the listeners are bound (`sluice run --user`).
//!
//! As a FireLens log router, Sluice creates `/var/run/fluent.sock` in a
//! directory the ECS agent makes for it. The agent gives that directory to
//! the router container's `user` only when the task definition names one;
//! otherwise it stays root's (mode 0755), and a router that starts as any
//! other user cannot create the socket. aws-for-fluent-bit runs as root, so
//! task definitions written for it name no user. The image therefore starts
//! as root, binds, and switches to an unprivileged user before it opens
//! anything else (the spool's files are that user's).

use std::io;

use crate::cli::RunAs;

/// Switches the whole process (every thread: glibc applies set*id to all of
/// them) to `run_as`, with no supplementary groups, when it runs as root.
/// Not root: nothing to do, the task definition's `user` applies.
pub fn switch_from_root(run_as: RunAs) -> io::Result<()> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        tracing::debug!(
            uid = run_as.uid,
            "not started as root: --user has nothing to do"
        );
        return Ok(());
    }
    // Groups first: once the user is not root it may not change them.
    // SAFETY: a zero-length list with a null pointer is what setgroups(2)
    // documents for clearing the supplementary groups.
    check(unsafe { libc::setgroups(0, std::ptr::null()) })?;
    // SAFETY: plain system calls on numbers.
    check(unsafe { libc::setgid(run_as.gid) })?;
    check(unsafe { libc::setuid(run_as.uid) })?;
    // Checked, not assumed: Sluice must not go on as root by mistake.
    // SAFETY: getuid and getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    if (uid, gid) != (run_as.uid, run_as.gid) {
        return Err(io::Error::other(format!(
            "still running as {uid}:{gid} after switching"
        )));
    }
    tracing::info!(
        uid,
        gid,
        "started as root to bind the listeners; running as this user from here on"
    );
    Ok(())
}

fn check(result: libc::c_int) -> io::Result<()> {
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
