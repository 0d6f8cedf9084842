//! The files of a deployment on AWS, checked by their own tools: the drone image's Packer
//! template (`packer validate`, Debian's packer), its provisioning scripts (`shellcheck`)
//! and the IAM policy of the ec2 deployer against the EC2 calls in its source.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use camut_integration::cloud::temp_dir;
use camut_integration::{camut_bin, repo_root, show};
use serde_json::Value;

#[test]
fn the_drone_image_template_validates_and_its_scripts_pass_shellcheck() {
    let ami = repo_root().join("ami");
    let template = ami.join("camut-drone.pkr.hcl");
    let validate = |template: &Path| {
        Command::new("packer")
            .arg("validate")
            .arg("-var")
            .arg(format!("camut_binary={}", camut_bin().display()))
            .arg(template)
            .output()
            .expect("packer runs (apt-get install packer; scripts/test.sh does)")
    };
    let out = validate(&template);
    assert!(out.status.success(), "{}", show(&out));

    // Validation bites: a template whose provisioner script is missing is refused.
    let broken_dir = temp_dir("ami-broken");
    let text = std::fs::read_to_string(&template).unwrap();
    let broken = broken_dir.join("camut-drone.pkr.hcl");
    std::fs::write(&broken, text).unwrap();
    let out = validate(&broken);
    assert!(!out.status.success(), "{}", show(&out));

    let scripts: Vec<_> = std::fs::read_dir(ami.join("scripts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .collect();
    assert!(scripts.len() >= 2, "{scripts:?}");
    let out = Command::new("shellcheck")
        .args(&scripts)
        .output()
        .expect("shellcheck runs (apt-get install shellcheck; scripts/test.sh does)");
    assert!(out.status.success(), "{}", show(&out));

    let sysctl = std::fs::read_to_string(ami.join("files/99-camut-sysctl.conf")).unwrap();
    for key in [
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_tw_reuse",
        "net.core.somaxconn",
        "net.core.netdev_max_backlog",
        "net.ipv4.tcp_max_syn_backlog",
    ] {
        assert!(sysctl.contains(key), "{key} is set");
    }
    let unit =
        std::fs::read_to_string(repo_root().join("deploy/systemd/camut-drone.service")).unwrap();
    assert!(unit.contains("LimitNOFILE=1000000"));
    assert!(
        std::fs::read_to_string(ami.join("files/99-camut-limits.conf"))
            .unwrap()
            .contains("nofile  1000000")
    );
}

#[test]
fn the_iam_policy_allows_exactly_the_calls_the_deployer_makes() {
    let policy: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("deploy/aws/iam-policy.json")).unwrap(),
    )
    .unwrap();
    let mut allowed = BTreeSet::new();
    for statement in policy["Statement"].as_array().unwrap() {
        assert_eq!(statement["Effect"], "Allow");
        match &statement["Action"] {
            Value::String(a) => {
                allowed.insert(a.clone());
            }
            Value::Array(list) => {
                allowed.extend(list.iter().map(|a| a.as_str().unwrap().to_owned()));
            }
            other => panic!("unexpected Action {other}"),
        }
    }
    // Every EC2 call in the deployer's source, as an IAM action; tagging at launch
    // needs ec2:CreateTags as well.
    let source =
        std::fs::read_to_string(repo_root().join("crates/camut-deployer-ec2/src/cloud.rs"))
            .unwrap();
    let mut used: BTreeSet<String> = [
        ("run_instances", "RunInstances"),
        ("describe_instances", "DescribeInstances"),
        ("describe_images", "DescribeImages"),
        ("terminate_instances", "TerminateInstances"),
        ("create_tags", "CreateTags"),
        ("stop_instances", "StopInstances"),
        ("start_instances", "StartInstances"),
        ("describe_instance_status", "DescribeInstanceStatus"),
    ]
    .iter()
    .filter(|(call, _)| source.contains(&format!(".{call}()")))
    .map(|(_, action)| format!("ec2:{action}"))
    .collect();
    assert!(source.contains("tag_specifications("));
    used.insert("ec2:CreateTags".into());
    assert_eq!(allowed, used);
}
