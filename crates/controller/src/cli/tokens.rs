//! `mcgate token create|list|revoke` and `mcgate credential create`.

use mcgate_client::{ClientError, Credentials};
use mcgate_domain::auth_api::*;

use super::args::{CredentialCmd, RoleArg, TokenCmd};
use super::table::Table;
use super::{client, connect, print_json};

fn when(unix: Option<u64>) -> String {
    match unix {
        None => "never".into(),
        Some(s) => humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(s),
        )
        .to_string(),
    }
}

fn host_segment(host: &str) -> Result<&str, ClientError> {
    // Names are checked by the controller; refuse here what would break the URL.
    if host.is_empty() || host.contains(['/', '?', '#', '%', ' ']) {
        return Err(ClientError::Status {
            status: 400,
            message: format!("host name {host:?} is not valid"),
            field: Some("host".into()),
        });
    }
    Ok(host)
}

pub(super) async fn token(cmd: TokenCmd) -> Result<(), ClientError> {
    match cmd {
        TokenCmd::Create {
            host,
            ttl,
            json,
            conn,
        } => {
            let spec = JoinTokenSpec {
                host,
                ttl_s: Some(ttl),
            };
            let t: IssuedToken = client(&conn)?.post("/v1/tokens", &spec).await?;
            if json {
                print_json(&t);
            } else {
                println!("{}", t.token);
            }
            Ok(())
        }
        TokenCmd::List { json, conn } => {
            let list: Vec<TokenInfo> = client(&conn)?.get("/v1/tokens").await?;
            if json {
                print_json(&list);
                return Ok(());
            }
            let mut t = Table::new(&["ID", "KIND", "ROLE", "HOST", "EXPIRES", "STATE"]);
            for x in &list {
                t.row(vec![
                    x.id.clone(),
                    match x.kind {
                        TokenKind::Join => "join".into(),
                        TokenKind::Credential => "credential".into(),
                    },
                    x.role.as_str().into(),
                    x.host.clone().unwrap_or_else(|| "-".into()),
                    when(x.expires_unix),
                    x.state.clone(),
                ]);
            }
            t.print();
            Ok(())
        }
        TokenCmd::Revoke { id, host, conn } => {
            let c = client(&conn)?;
            match (id, host) {
                (_, Some(h)) => {
                    let path = format!("/v1/hosts/{}/credentials", host_segment(&h)?);
                    let _: serde_json::Value = c.delete(&path, None::<&()>).await?;
                    println!(
                        "revoked every token and credential of host {h}; its agent and members are removed"
                    );
                }
                (Some(id), None) => {
                    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                        return Err(ClientError::Status {
                            status: 400,
                            message: format!("{id:?} is not a token id (see `mcgate token list`)"),
                            field: Some("id".into()),
                        });
                    }
                    let _: serde_json::Value =
                        c.delete(&format!("/v1/tokens/{id}"), None::<&()>).await?;
                    println!("revoked {id}");
                }
                (None, None) => {}
            }
            Ok(())
        }
    }
}

pub(super) async fn credential(cmd: CredentialCmd) -> Result<(), ClientError> {
    let CredentialCmd::Create {
        role,
        ttl,
        output,
        json,
        conn,
    } = cmd;
    let (c, own) = connect(&conn)?;
    let spec = CredentialSpec {
        role: match role {
            RoleArg::Admin => Role::Admin,
            RoleArg::Viewer => Role::Viewer,
        },
        ttl_s: ttl,
    };
    // Checked before the secret is issued, so none is left behind unused.
    let own = match (&output, own) {
        (Some(_), None) => {
            return Err(ClientError::Decode(
                "--output needs this CLI's credential file (--credentials) for the controller's URL and CA".into(),
            ));
        }
        (_, own) => own,
    };
    let t: IssuedToken = c.post("/v1/credentials", &spec).await?;
    match (output, own) {
        (Some(path), Some(own)) => {
            let file = Credentials {
                controller: own.controller,
                ca: own.ca,
                token: t.token,
                role: t.role.as_str().into(),
                host: None,
            };
            file.save(&path)?;
            println!(
                "wrote {} credential {} to {}",
                t.role.as_str(),
                t.id,
                path.display()
            );
        }
        _ if json => print_json(&t),
        _ => println!("{}", t.token),
    }
    Ok(())
}
