//! The admin commands' arguments (clap), one type per command.

use std::net::IpAddr;

use ipnet::Ipv4Net;

use super::parse_duration_ms;

/// The admin commands, each a top-level `mcgate` subcommand.
#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Create, delete, list and associate multicast domains.
    #[command(subcommand)]
    Domain(DomainCmd),
    /// Register and deregister static members.
    #[command(subcommand)]
    Members(MembersCmd),
    /// Register and deregister static sources.
    #[command(subcommand)]
    Sources(SourcesCmd),
    /// List the agents the controller knows.
    Agents(AgentsArgs),
    /// Search the group table.
    Groups(GroupsArgs),
    /// Who sends what to whom in a domain: per host its rates, per group its senders,
    /// receivers, flows between hosts and drops (`--watch` redraws every second).
    Traffic(TrafficArgs),
    /// Join tokens for agents: create, list, revoke (admin).
    #[command(subcommand)]
    Token(TokenCmd),
    /// Credentials for people and tools (admin, viewer).
    #[command(subcommand)]
    Credential(CredentialCmd),
}

/// `mcgate token ...`
#[derive(Debug, clap::Subcommand)]
pub enum TokenCmd {
    /// Issue a join token for one host; its agent spends it once (`mcgate agent
    /// --token-file FILE`) for a credential bound to that host.
    Create {
        /// The host the token may join as.
        #[arg(long)]
        host: String,
        /// How long the token is good for (e.g. 1h, 30m, 2d).
        #[arg(long, default_value = "1h", value_parser = parse_ttl_s)]
        ttl: u64,
        /// Print JSON (id, token, host, expiry) instead of the token alone.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// List join tokens and credentials (never their secrets).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Revoke one token or credential by id, or everything bound to a host (its agent
    /// is refused from then on, and its agent record and members are removed).
    Revoke {
        /// The id (from `mcgate token list`).
        #[arg(required_unless_present = "host", conflicts_with = "host")]
        id: Option<String>,
        /// Revoke every join token and credential of this host.
        #[arg(long)]
        host: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
}

/// `mcgate credential ...`
#[derive(Debug, clap::Subcommand)]
pub enum CredentialCmd {
    /// Issue an admin or viewer credential.
    Create {
        /// What it may do.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// How long it is good for (e.g. 30d); no expiry if left out.
        #[arg(long, value_parser = parse_ttl_s)]
        ttl: Option<u64>,
        /// Write a credential file (mode 0600) with this CLI's controller URL and CA,
        /// instead of printing the secret.
        #[arg(long, value_name = "FILE")]
        output: Option<std::path::PathBuf>,
        /// Print JSON instead of the secret alone.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
}

/// A role a person or tool can be given.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RoleArg {
    /// Everything.
    Admin,
    /// Reads only.
    Viewer,
}

fn parse_ttl_s(s: &str) -> Result<u64, String> {
    let ms = parse_duration_ms(s)?;
    if ms < 1_000 {
        return Err(format!("{s:?} is shorter than a second"));
    }
    Ok(ms / 1_000)
}

/// Which controller to talk to.
#[derive(Debug, Clone, clap::Args)]
pub struct Conn {
    /// Controller URL: https://HOST:PORT or unix:PATH (default: the controller of the
    /// credential file if one is given, else the running lab's if exactly one lab is up,
    /// else the one of /var/lib/mcgate/admin.credentials; with several labs up, name one).
    #[arg(long, env = "MCGATE_CONTROLLER")]
    pub controller: Option<String>,
    /// Credential file for https:// (JSON: controller URL, CA, token; see
    /// docs/security.md). Over a unix: socket none is needed.
    #[arg(long, env = mcgate_client::credentials::CREDENTIALS_ENV, value_name = "FILE")]
    pub credentials: Option<std::path::PathBuf>,
}

/// `mcgate domain ...`
#[derive(Debug, clap::Subcommand)]
pub enum DomainCmd {
    /// Create a domain.
    Create(CreateArgs),
    /// Delete a domain (its hosts stop forwarding its groups).
    Delete {
        /// Domain name.
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// List domains.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Show one domain.
    Show {
        /// Domain name.
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Associate a subnet or a host with a domain.
    Associate(AssocArgs),
    /// Remove a subnet or host association.
    Disassociate(AssocArgs),
}

/// IGMP version of a domain's querier.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum IgmpArg {
    /// IGMPv2 (like the reference gateway).
    V2,
    /// IGMPv3 with source filtering; older hosts fall back.
    V3,
    /// No IGMP: static members only.
    Off,
}

/// How a domain's traffic crosses between hosts.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TunnelArg {
    /// VXLAN inside WireGuard: authenticated and encrypted per host key pair.
    Wireguard,
    /// Plain VXLAN, for interop with VXLAN equipment; accepted only from the domain's
    /// peers.
    Vxlan,
}

/// `mcgate domain create`
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Domain name (letters, digits, '-', '_', '.').
    pub name: String,
    /// VXLAN network identifier, 1 to 16777215 (default: the lowest free one).
    #[arg(long)]
    pub vni: Option<u32>,
    /// IGMP version the querier speaks.
    #[arg(long, value_enum, default_value = "v2")]
    pub igmp: IgmpArg,
    /// Only registered static sources may send to the domain's groups.
    #[arg(long)]
    pub static_sources: bool,
    /// IGMP query interval (e.g. 125s, 2m, 500ms; default 125s, the Transit Gateway uses 2m).
    #[arg(long, value_parser = parse_duration_ms)]
    pub query_interval: Option<u64>,
    /// IGMP query response interval (default 10s).
    #[arg(long, value_parser = parse_duration_ms)]
    pub query_response_interval: Option<u64>,
    /// IGMP last member query interval (default 1s).
    #[arg(long, value_parser = parse_duration_ms)]
    pub last_member_interval: Option<u64>,
    /// IGMP last member query count (default: the robustness).
    #[arg(long)]
    pub last_member_count: Option<u8>,
    /// IGMP robustness variable, 1 to 7 (default 2; the Transit Gateway behaves like 3).
    #[arg(long)]
    pub robustness: Option<u8>,
    /// Act on a leave at once on every link (only right where each link has one host).
    #[arg(long)]
    pub fast_leave: bool,
    /// Act on a leave at once on links the agent knows carry a single host (a task's
    /// veth); default true; `false`: last-member queries there too.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub single_host_fast_leave: bool,
    /// How traffic crosses between hosts.
    #[arg(long, value_enum, default_value = "wireguard")]
    pub tunnel: TunnelArg,
    /// Print the created domain as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Conn,
}

/// `mcgate domain associate|disassociate`
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["subnet", "host"])))]
pub struct AssocArgs {
    /// Domain name.
    pub name: String,
    /// A subnet (CIDR); a subnet belongs to one domain only.
    #[arg(long)]
    pub subnet: Option<Ipv4Net>,
    /// A host name.
    #[arg(long)]
    pub host: Option<String>,
    #[command(flatten)]
    pub conn: Conn,
}

/// `mcgate members ...`
#[derive(Debug, clap::Subcommand)]
pub enum MembersCmd {
    /// Register a static member (it ignores IGMP leaves).
    Register(MemberArgs),
    /// Deregister a static member.
    Deregister(MemberArgs),
}

/// A static member.
#[derive(Debug, clap::Args)]
pub struct MemberArgs {
    /// Domain name.
    #[arg(long)]
    pub domain: String,
    /// Multicast group: 224.0.0.0/4 outside 224.0.0.0/24, or IPv6 of scope 3 or above
    /// (ff05::/16, ff0e::/16, ff3e::/16 ...).
    #[arg(long)]
    pub group: IpAddr,
    /// Host the member is on.
    #[arg(long)]
    pub host: String,
    /// The host's interface to deliver on (default: every attached link).
    #[arg(long)]
    pub interface: Option<String>,
    /// The member's own address (of the group's family), for the group table.
    #[arg(long)]
    pub address: Option<IpAddr>,
    #[command(flatten)]
    pub conn: Conn,
}

/// `mcgate sources ...`
#[derive(Debug, clap::Subcommand)]
pub enum SourcesCmd {
    /// Register a static source (with --static-sources, only these may send).
    Register(SourceArgs),
    /// Deregister a static source.
    Deregister(SourceArgs),
}

/// A static source.
#[derive(Debug, clap::Args)]
pub struct SourceArgs {
    /// Domain name.
    #[arg(long)]
    pub domain: String,
    /// Multicast group: 224.0.0.0/4 outside 224.0.0.0/24, or IPv6 of scope 3 or above.
    #[arg(long)]
    pub group: IpAddr,
    /// The unicast address allowed to send, of the group's family.
    #[arg(long)]
    pub address: IpAddr,
    /// Host the source is on, for the group table.
    #[arg(long)]
    pub host: Option<String>,
    /// The source's interface, for the group table.
    #[arg(long)]
    pub interface: Option<String>,
    #[command(flatten)]
    pub conn: Conn,
}

/// `mcgate agents`
#[derive(Debug, clap::Args)]
pub struct AgentsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Conn,
}

/// `mcgate groups`
#[derive(Debug, clap::Args)]
pub struct GroupsArgs {
    /// Only this domain.
    #[arg(long)]
    pub domain: Option<String>,
    /// Only this group (IPv4 or IPv6).
    #[arg(long)]
    pub group: Option<IpAddr>,
    /// Only this host.
    #[arg(long)]
    pub host: Option<String>,
    /// Only rows in this subnet.
    #[arg(long)]
    pub subnet: Option<Ipv4Net>,
    /// Only igmp or static rows.
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    pub kind: Option<TypeArg>,
    /// Only member rows with this address.
    #[arg(long)]
    pub member: Option<IpAddr>,
    /// Only source rows with this address.
    #[arg(long)]
    pub source: Option<IpAddr>,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Conn,
}

/// `mcgate traffic`
#[derive(Debug, clap::Args)]
pub struct TrafficArgs {
    /// The domain.
    pub domain: String,
    /// Redraw as the figures change (like top) until interrupted; with --json, one JSON
    /// object per line.
    #[arg(long)]
    pub watch: bool,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Conn,
}

/// Member or source type filter.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TypeArg {
    /// Learned from IGMP.
    Igmp,
    /// Learned from MLD (IPv6 groups).
    Mld,
    /// Registered through the API.
    Static,
    /// From the upstream network, at a gateway host (`mcgate agent --upstream`).
    Upstream,
}
