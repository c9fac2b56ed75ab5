//! The lab's way into its controller from the root namespace: the forwarder on
//! 127.0.0.1 (node `ui`, the process `mcgate lab _forward`, see `forward`), the viewer
//! credential `lab up` issues for it, and the line that says how to open the
//! controller's web view.
//!
//! The forwarder runs under the lab's supervisor like every other node, but in the root
//! namespace, so it outlives `lab up`, shows in `lab status` and `lab logs ui`, and
//! `lab down` stops it by its recorded PID.

use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mcgate_domain::auth_api::{CredentialSpec, IssuedToken, Role};

use crate::error::LabError;
use crate::forward::{Target, read_ready};
use crate::ops::{check_interrupt, controller_client, exited_why, node_failed, runtime};
use crate::plan::{CONTROLLER_PORT, quiet_env};
use crate::process::is_running;
use crate::state::{LabState, Launch, UiState};

/// The forwarder's node name (`lab logs ui`, `lab restart ui`).
pub const UI_NODE: &str = "ui";

/// The viewer credential's file in the lab's state directory.
pub const VIEWER_CREDENTIALS: &str = "viewer.credentials";

/// How long the forwarder may take to listen.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the forwarder writes the address it listens on, once it does.
pub fn ready_path(lab_dir: &Path) -> PathBuf {
    lab_dir.join("ui.addr")
}

/// The controller's API through the forwarder: what the viewer credential names.
pub fn api_url(port: u16) -> String {
    format!("https://127.0.0.1:{port}")
}

/// The controller's web view through the forwarder.
pub fn view_url(port: u16) -> String {
    format!("{}/ui/", api_url(port))
}

/// How to open the web view, in one line.
pub fn hint(ui: &UiState) -> String {
    format!(
        "open {} and paste the token from {}; the certificate is from the lab's CA {}",
        view_url(ui.port),
        ui.credentials.display(),
        ui.ca.display()
    )
}

/// Plans the forwarder of a lab with controllers (none otherwise): to its controller,
/// or to each replica in turn, each reached from inside its own namespace.
pub fn plan(st: &LabState, exe: &Path, port: u16) -> Option<UiState> {
    let dir = st.dir();
    let (targets, ca) = match (&st.controller, &st.controller_netns, &st.control_plane) {
        (Some(c), Some(ns), _) => (
            vec![Target {
                netns: Some(ns.clone()),
                addr: SocketAddrV4::new(c.ip, CONTROLLER_PORT),
            }],
            dir.join("controller").join("ca.pem"),
        ),
        (None, _, Some(cp)) if !cp.replicas.is_empty() => (
            cp.replicas
                .iter()
                .map(|r| Target {
                    netns: Some(r.launch.netns.clone()),
                    addr: SocketAddrV4::new(r.ip, CONTROLLER_PORT),
                })
                .collect(),
            crate::plan_ha::shared_ca(&dir),
        ),
        _ => return None,
    };
    let mut argv = vec![
        exe.display().to_string(),
        "lab".into(),
        "_forward".into(),
        "--port".into(),
        port.to_string(),
        "--ready".into(),
        ready_path(&dir).display().to_string(),
    ];
    for t in &targets {
        argv.push("--to".into());
        argv.push(t.arg());
    }
    Some(UiState {
        port,
        credentials: dir.join(VIEWER_CREDENTIALS),
        ca,
        launch: Launch {
            netns: String::new(),
            argv,
            env: quiet_env(),
            running: None,
            private_run: false,
        },
    })
}

/// Sets the `--port` of a forwarder's command line, so that a restarted forwarder
/// listens where the first one did (the URL and the credential stay valid).
fn pin_port(argv: &mut [String], port: u16) {
    if let Some(i) = argv.iter().position(|a| a == "--port")
        && let Some(v) = argv.get_mut(i + 1)
    {
        *v = port.to_string();
    }
}

/// Starts the forwarder, waits until it listens, records its port, and issues the
/// viewer credential for it.
pub fn start(st: &mut LabState, step: usize, steps: usize) -> Result<(), LabError> {
    let dir = st.dir();
    let sup = st.supervisor()?;
    let ready = ready_path(&dir);
    let _ = std::fs::remove_file(&ready);
    let Some(ui) = st.ui.as_mut() else {
        return Ok(());
    };
    let r = crate::ops::start_node(&sup, &dir, UI_NODE, &mut ui.launch)?;
    st.save()?;
    let deadline = Instant::now() + READY_TIMEOUT;
    let port = loop {
        if let Some(p) = read_ready(&ready) {
            break p;
        }
        if !is_running(&r) {
            return Err(node_failed(&dir, UI_NODE, exited_why(&dir, UI_NODE)));
        }
        if Instant::now() > deadline {
            return Err(node_failed(
                &dir,
                UI_NODE,
                format!("it did not listen within {READY_TIMEOUT:?}"),
            ));
        }
        check_interrupt()?;
        std::thread::sleep(Duration::from_millis(20));
    };
    let Some(ui) = st.ui.as_mut() else {
        return Ok(());
    };
    ui.port = port;
    pin_port(&mut ui.launch.argv, port);
    let ui = ui.clone();
    st.save()?;
    issue_viewer(st, &ui)?;
    println!(
        "[{step}/{steps}] web view: 127.0.0.1:{port} forwards to the controller (pid {}); viewer credential {}",
        r.pid,
        ui.credentials.display()
    );
    Ok(())
}

/// Issues a viewer credential through the controller's socket and saves it (0600) in
/// the format of the admin's, naming the forwarded URL and the lab's CA.
fn issue_viewer(st: &LabState, ui: &UiState) -> Result<(), LabError> {
    let client = controller_client(&crate::ops_ha::live_socket(st)?)?;
    let spec = CredentialSpec {
        role: Role::Viewer,
        ttl_s: None,
    };
    let t: IssuedToken = runtime()?
        .block_on(client.post("/v1/credentials", &spec))
        .map_err(|e| LabError::Controller {
            what: "issuing the lab's viewer credential".into(),
            source: e,
        })?;
    let ca = std::fs::read_to_string(&ui.ca).map_err(|e| LabError::io(&ui.ca, e))?;
    let file = mcgate_client::Credentials {
        controller: api_url(ui.port),
        ca,
        token: t.token,
        role: Role::Viewer.as_str().into(),
        host: None,
    };
    file.save(&ui.credentials)
        .map_err(|e| LabError::io(&ui.credentials, std::io::Error::other(e.message)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::plan_example as planned;
    use crate::topology::REFERENCE_TOPOLOGY;

    #[test]
    fn forwards_from_loopback_to_the_controller_in_its_namespace() {
        let st = planned("r", REFERENCE_TOPOLOGY);
        let ui = plan(&st, Path::new("/usr/bin/mcgate"), 0).unwrap();
        assert_eq!(
            ui.launch.argv.join(" "),
            "/usr/bin/mcgate lab _forward --port 0 --ready /run/mcgate/labs/ecs-multicast/ui.addr \
             --to mcgl-ecs-multicast-ctl=10.0.255.254:7400"
        );
        assert_eq!(ui.launch.netns, "", "the root namespace");
        assert_eq!(
            ui.credentials,
            Path::new("/run/mcgate/labs/ecs-multicast/viewer.credentials")
        );
        assert_eq!(
            ui.ca,
            Path::new("/run/mcgate/labs/ecs-multicast/controller/ca.pem")
        );
        let mut argv = ui.launch.argv.clone();
        pin_port(&mut argv, 40123);
        assert!(argv.windows(2).any(|w| w == ["--port", "40123"]));
    }

    #[test]
    fn an_ha_lab_forwards_to_each_replica_in_turn() {
        let st = planned("ha", include_str!("../../../examples/ha.toml"));
        let ui = plan(&st, Path::new("/x"), 7443).unwrap();
        let to: Vec<&str> = ui
            .launch
            .argv
            .windows(2)
            .filter(|w| w[0] == "--to")
            .map(|w| w[1].as_str())
            .collect();
        assert_eq!(
            to,
            [
                "mcgl-ha-ctl-1=10.0.255.242:7400",
                "mcgl-ha-ctl-2=10.0.255.243:7400",
                "mcgl-ha-ctl-3=10.0.255.244:7400"
            ]
        );
        assert_eq!(ui.ca, Path::new("/run/mcgate/labs/ha/ca.pem"));
        assert!(ui.launch.argv.windows(2).any(|w| w == ["--port", "7443"]));
    }

    #[test]
    fn no_controller_no_forwarder() {
        let src = "name = \"p\"\n[vpc]\ncidr = \"10.0.0.0/16\"\n[[subnets]]\nname = \"s\"\ncidr = \"10.0.2.0/24\"\n[[hosts]]\nname = \"h\"\nsubnet = \"s\"\n";
        assert_eq!(plan(&planned("p", src), Path::new("/x"), 0), None);
    }

    #[test]
    fn the_hint_names_the_url_the_token_and_the_ca() {
        let st = planned("r", REFERENCE_TOPOLOGY);
        let mut ui = plan(&st, Path::new("/x"), 0).unwrap();
        ui.port = 40123;
        assert_eq!(
            hint(&ui),
            "open https://127.0.0.1:40123/ui/ and paste the token from \
             /run/mcgate/labs/ecs-multicast/viewer.credentials; the certificate is from the \
             lab's CA /run/mcgate/labs/ecs-multicast/controller/ca.pem"
        );
    }
}
