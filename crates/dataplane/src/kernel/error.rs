//! Errors of the kernel fast path, each a sentence a user can act on.

use std::io;

/// What went wrong while programming the kernel's VXLAN and bridge tables.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The rtnetlink socket could not be opened or configured.
    #[error("cannot open an rtnetlink socket ({0}); the kernel fast path needs Linux rtnetlink")]
    Socket(#[source] io::Error),

    /// Sending to or receiving from the kernel failed.
    #[error("netlink I/O failed while trying to {op}: {source}")]
    Io {
        /// What was being done.
        op: String,
        /// The system error.
        #[source]
        source: io::Error,
    },

    /// The kernel refused a request; `message` is its own explanation (extended ack).
    #[error("the kernel refused to {op}: {}{}{}", io::Error::from_raw_os_error(*errno),
        message.as_deref().map(|m| format!(": \"{m}\"")).unwrap_or_default(),
        hint(*errno))]
    Kernel {
        /// What was being done.
        op: String,
        /// Positive errno.
        errno: i32,
        /// The kernel's extended-ack text, if it gave one.
        message: Option<String>,
    },

    /// A reply did not have the layout the kernel documents.
    #[error("malformed netlink reply while trying to {op}: {detail}")]
    Malformed {
        /// What was being done.
        op: String,
        /// What was wrong.
        detail: String,
    },

    /// A dump kept changing under us (NLM_F_DUMP_INTR) and retries ran out.
    #[error("the kernel table kept changing while dumping it to {op}; retry later")]
    DumpInterrupted {
        /// What was being done.
        op: String,
    },

    /// The WireGuard device could not be made or configured.
    #[error("WireGuard: {0}")]
    Wireguard(String),

    /// The VXLAN source filter (nftables) could not be applied or read.
    #[error("the VXLAN source filter: {0}")]
    Filter(String),

    /// No network device has that name.
    #[error(
        "no network device named {0:?} exists in this network namespace; create it first or fix the name"
    )]
    NoSuchDevice(String),

    /// The named device exists but is not of the kind needed.
    #[error("device {name:?} is a {found:?} device, not a {wanted}; pass the name of a {wanted}")]
    WrongKind {
        /// Device name.
        name: String,
        /// Its kind ("" for a plain device).
        found: String,
        /// The kind needed.
        wanted: &'static str,
    },

    /// A device name the kernel would refuse (empty, too long, bad characters).
    #[error("invalid device name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },

    /// A VNI outside 1..=16777215.
    #[error("invalid VXLAN network identifier {0}: it must be between 1 and 16777215")]
    InvalidVni(u32),

    /// An MDB entry that the kernel would refuse; caught before asking it.
    #[error("invalid multicast table entry {entry}: {reason}")]
    InvalidEntry {
        /// The entry, as `bridge mdb show` would print it.
        entry: String,
        /// Why it is invalid.
        reason: String,
    },

    /// The probe could not run at all.
    #[error("cannot probe the kernel: {0}")]
    Probe(String),
}

fn hint(errno: i32) -> &'static str {
    match errno {
        libc::EPERM => " (run the agent as root or with CAP_NET_ADMIN)",
        libc::EOPNOTSUPP => {
            " (this kernel lacks the feature; Linux 6.3 or newer is needed for VXLAN MDB entries with a destination)"
        }
        _ => "",
    }
}

impl Error {
    /// A reply to `op` that did not have the documented layout, for `detail`.
    pub(crate) fn malformed(op: impl Into<String>, detail: String) -> Self {
        Error::Malformed {
            op: op.into(),
            detail,
        }
    }

    /// The errno of a kernel refusal, if this is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// True when the kernel said the object already exists.
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    /// True when the kernel said the object (device, entry) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NoSuchDevice(_))
            || matches!(self.errno(), Some(libc::ENOENT | libc::ENODEV))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_refusal_reads_as_a_sentence() {
        let e = Error::Kernel {
            op: "add VXLAN MDB entry".into(),
            errno: libc::EINVAL,
            message: Some("Cannot add (*, G) INCLUDE with an empty source list".into()),
        };
        let s = e.to_string();
        assert!(s.starts_with("the kernel refused to add VXLAN MDB entry: "));
        assert!(s.ends_with("\"Cannot add (*, G) INCLUDE with an empty source list\""));
        let e = Error::Kernel {
            op: "create device".into(),
            errno: libc::EPERM,
            message: None,
        };
        assert!(e.to_string().contains("CAP_NET_ADMIN"));
        assert!(!e.is_exists());
    }
}
