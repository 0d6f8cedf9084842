//! The dummy deployer: its table and the create rules under a capacity.

use camut::v1::{
    ConfigureInstancesRequest, CreateInstancesRequest, DestroyInstancesRequest,
    ListInstancesRequest,
};
use camut_deployer::{Deployer, DummyDeployer};
use tonic::{Code, Request};

fn create(campaign: &str, min: u32, max: u32) -> Request<CreateInstancesRequest> {
    Request::new(CreateInstancesRequest {
        campaign: campaign.into(),
        min,
        max,
        ..Default::default()
    })
}

async fn ids(deployer: &DummyDeployer, campaign: &str) -> Vec<String> {
    let list = deployer
        .list_instances(Request::new(ListInstancesRequest {
            campaign: campaign.into(),
        }))
        .await
        .unwrap()
        .into_inner();
    list.instances.into_iter().map(|i| i.id).collect()
}

#[tokio::test]
async fn creates_max_without_capacity() {
    let deployer = DummyDeployer::new();
    let created = deployer
        .create_instances(create("c", 1, 3))
        .await
        .unwrap()
        .into_inner()
        .instances;
    let got: Vec<(&str, &str, &str)> = created
        .iter()
        .map(|i| (i.id.as_str(), i.campaign.as_str(), i.state.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("dummy-c-0", "c", "running"),
            ("dummy-c-1", "c", "running"),
            ("dummy-c-2", "c", "running"),
        ]
    );
}

#[tokio::test]
async fn fewer_than_asked_when_capacity_is_short() {
    let deployer = DummyDeployer::with_capacity(3);
    let created = deployer
        .create_instances(create("a", 1, 5))
        .await
        .unwrap()
        .into_inner()
        .instances;
    assert_eq!(created.len(), 3, "min(capacity, max)");
    assert_eq!(
        ids(&deployer, "a").await,
        ["dummy-a-0", "dummy-a-1", "dummy-a-2"]
    );
}

#[tokio::test]
async fn below_min_fails_and_creates_nothing() {
    let deployer = DummyDeployer::with_capacity(3);
    let status = deployer
        .create_instances(create("a", 4, 5))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("at least 4") && status.message().contains("3 available"),
        "{}",
        status.message()
    );
    assert!(ids(&deployer, "").await.is_empty());
}

#[tokio::test]
async fn nothing_left_until_a_campaign_is_destroyed() {
    let deployer = DummyDeployer::with_capacity(3);
    assert_eq!(
        deployer
            .create_instances(create("a", 1, 2))
            .await
            .unwrap()
            .into_inner()
            .instances
            .len(),
        2
    );
    let created = deployer
        .create_instances(create("b", 1, 2))
        .await
        .unwrap()
        .into_inner()
        .instances;
    assert_eq!(created.len(), 1, "only one left");

    let status = deployer
        .create_instances(create("c", 1, 1))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("0 available"),
        "{}",
        status.message()
    );

    // min 0 accepts an empty answer.
    let none = deployer
        .create_instances(create("c", 0, 1))
        .await
        .unwrap()
        .into_inner()
        .instances;
    assert!(none.is_empty());

    let destroyed = deployer
        .destroy_instances(Request::new(DestroyInstancesRequest {
            campaign: "a".into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .destroyed;
    assert_eq!(destroyed, ["dummy-a-0", "dummy-a-1"]);
    assert_eq!(ids(&deployer, "").await, ["dummy-b-0"]);

    let created = deployer
        .create_instances(create("c", 2, 5))
        .await
        .unwrap()
        .into_inner()
        .instances;
    assert_eq!(created.len(), 2, "freed capacity is available again");
}

#[tokio::test]
async fn more_instances_for_a_campaign_continue_its_numbering() {
    let deployer = DummyDeployer::new();
    deployer.create_instances(create("a", 1, 2)).await.unwrap();
    deployer.create_instances(create("a", 1, 1)).await.unwrap();
    assert_eq!(
        ids(&deployer, "a").await,
        ["dummy-a-0", "dummy-a-1", "dummy-a-2"]
    );
}

#[tokio::test]
async fn bad_create_requests_are_refused() {
    let deployer = DummyDeployer::new();
    for (campaign, min, max) in [("", 1, 1), ("a", 0, 0), ("a", 3, 2)] {
        let status = deployer
            .create_instances(create(campaign, min, max))
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{campaign:?} {min} {max}"
        );
    }
}

#[tokio::test]
async fn configure_marks_the_campaigns_instances_and_lists_filter_by_campaign() {
    let deployer = DummyDeployer::new();
    deployer.create_instances(create("a", 1, 2)).await.unwrap();
    deployer.create_instances(create("b", 1, 1)).await.unwrap();

    let response = deployer
        .configure_instances(Request::new(ConfigureInstancesRequest {
            campaign: "a".into(),
            instance_ids: vec!["dummy-a-1".into(), "dummy-b-0".into(), "nope".into()],
            server_address: "http://127.0.0.1:1".into(),
            join_token: "t".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.configured, ["dummy-a-1"]);
    let mut failed: Vec<&String> = response.failed.keys().collect();
    failed.sort();
    assert_eq!(failed, ["dummy-b-0", "nope"]);

    let all = deployer
        .list_instances(Request::new(ListInstancesRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .instances;
    let states: Vec<(&str, &str)> = all
        .iter()
        .map(|i| (i.id.as_str(), i.state.as_str()))
        .collect();
    assert_eq!(
        states,
        [
            ("dummy-a-0", "running"),
            ("dummy-a-1", "configured"),
            ("dummy-b-0", "running"),
        ]
    );
    assert_eq!(ids(&deployer, "b").await, ["dummy-b-0"]);

    // No ids: all of the campaign's.
    let response = deployer
        .configure_instances(Request::new(ConfigureInstancesRequest {
            campaign: "a".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.configured, ["dummy-a-0", "dummy-a-1"]);
    assert!(response.failed.is_empty());
}
