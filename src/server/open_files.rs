//! The limit on open files. Every proxied connection holds two descriptors (the agent's and
//! the upstream's), and a desktop session's soft limit is often 1,024: left there, the
//! server would stop accepting near 500 tunnels while the hard limit allows far more. So it
//! raises its soft limit to the hard one at start, as Go programs (the reference among them)
//! do by default.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Raises the soft limit on open files to the hard limit. Failing that, the server runs with
/// what it has: the limit is a capacity, not a correctness, matter.
pub fn raise_to_hard_limit() {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft >= hard {
        return;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => tracing::debug!(from = soft, to = hard, "raised the open-file limit"),
        Err(e) => tracing::warn!("cannot raise the open-file limit from {soft} to {hard}: {e}"),
    }
}

/// How many client connections the listeners take in all: half the open-file limit, since
/// each proxied one may need an upstream descriptor too, and the database and the listeners
/// need theirs (0, no cap, when the limit cannot be read or is unlimited). Without it, clients
/// from many addresses (each under its per-address cap) took every descriptor, and the server
/// could open neither upstream connections nor files.
pub fn connection_cap() -> usize {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, _)) if soft != nix::sys::resource::RLIM_INFINITY => {
            usize::try_from(soft / 2).unwrap_or(0)
        }
        _ => 0,
    }
}
