//! `camut instances [--zombies] [--reap]`: the instances the server's deployers hold.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use camut::{v1, Client};
use serde_json::{json, Value};

use super::{print_json, InstancesArgs};

/// Runs `camut instances`: lists (all or the zombies) or reaps. Exit 1 when a deployer
/// could not be asked or a reap failed.
pub(crate) async fn command(client: &Client, a: InstancesArgs) -> anyhow::Result<ExitCode> {
    let errors = if a.reap {
        let r = client.reap_zombies().await?;
        if a.json {
            print_json(&json!({
                "zombies": r.zombies.iter().map(instance_json).collect::<Vec<_>>(),
                "reaped": r.reaped,
                "errors": r.errors,
            }))?;
        } else {
            print!("{}", table(&r.zombies));
            println!("reaped {} instances", r.reaped.len());
        }
        r.errors
    } else {
        let r = client.instances(a.zombies).await?;
        if a.json {
            print_json(&json!({
                "instances": r.instances.iter().map(instance_json).collect::<Vec<_>>(),
                "errors": r.errors,
            }))?;
        } else {
            print!("{}", table(&r.instances));
        }
        r.errors
    };
    report(&errors, a.json);
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn report(errors: &HashMap<String, String>, json: bool) {
    if json {
        return;
    }
    let mut keys: Vec<_> = errors.keys().collect();
    keys.sort();
    for k in keys {
        eprintln!("camut: {k}: {}", errors[k]);
    }
}

/// One instance as JSON.
fn instance_json(m: &v1::ManagedInstance) -> Value {
    let i = m.instance.clone().unwrap_or_default();
    json!({
        "deployer": m.deployer,
        "id": i.id,
        "campaign": i.campaign,
        "state": i.state,
        "address": i.address,
        "instance_type": i.instance_type,
        "server": i.server,
        "expires_unix_ms": i.expires_unix_ms,
        "zombie": m.zombie,
    })
}

/// The instances as a table; zombies say why in the last column.
fn table(list: &[v1::ManagedInstance]) -> String {
    if list.is_empty() {
        return "no instances\n".into();
    }
    let rows: Vec<[String; 6]> = list
        .iter()
        .map(|m| {
            let i = m.instance.clone().unwrap_or_default();
            [
                m.deployer.clone(),
                i.id,
                i.campaign,
                i.state,
                i.address,
                if m.zombie.is_empty() {
                    "-".into()
                } else {
                    format!("zombie: {}", m.zombie)
                },
            ]
        })
        .collect();
    let head = [
        "DEPLOYER", "INSTANCE", "CAMPAIGN", "STATE", "ADDRESS", "ZOMBIE",
    ];
    let mut widths = head.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (n, (c, w)) in cells.iter().zip(widths).enumerate() {
            if n + 1 == cells.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ");
            }
        }
        let _ = writeln!(out, "{}", l.trim_end());
    };
    line(&head);
    for r in &rows {
        line(&r.each_ref().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zombies_say_why() {
        let m = |id: &str, zombie: &str| v1::ManagedInstance {
            deployer: "aws".into(),
            instance: Some(v1::DeployedInstance {
                id: id.into(),
                campaign: "c".into(),
                state: "running".into(),
                ..Default::default()
            }),
            zombie: zombie.into(),
        };
        let t = table(&[m("i-1", ""), m("i-22", "expired 5 s ago")]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("DEPLOYER  INSTANCE  CAMPAIGN"));
        assert!(lines[1].ends_with("-"));
        assert!(lines[2].ends_with("zombie: expired 5 s ago"));
        assert_eq!(table(&[]), "no instances\n");
    }
}
