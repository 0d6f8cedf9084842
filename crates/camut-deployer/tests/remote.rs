//! A dummy deployer served on loopback and driven through a remote deployer.

use std::net::SocketAddr;

use camut::v1::{
    ConfigureInstancesRequest, CreateInstancesRequest, DestroyInstancesRequest,
    ListInstancesRequest,
};
use camut_deployer::{service, Deployer, DummyDeployer, Error, RemoteDeployer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::{Code, Request};

/// Serves a dummy deployer of capacity 3 on a loopback port.
async fn serve_dummy() -> (SocketAddr, JoinHandle<Result<(), Error>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(service::serve(DummyDeployer::with_capacity(3), listener));
    (addr, server)
}

fn create(campaign: &str, min: u32, max: u32) -> Request<CreateInstancesRequest> {
    Request::new(CreateInstancesRequest {
        campaign: campaign.into(),
        min,
        max,
        ..Default::default()
    })
}

async fn list(remote: &RemoteDeployer, campaign: &str) -> Vec<String> {
    remote
        .list_instances(Request::new(ListInstancesRequest {
            campaign: campaign.into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .instances
        .into_iter()
        .map(|i| i.id)
        .collect()
}

#[tokio::test]
async fn remote_calls_reach_the_served_deployer() {
    let (addr, server) = serve_dummy().await;
    let remote = RemoteDeployer::connect_lazy(format!("http://{addr}")).unwrap();

    let created = remote
        .create_instances(create("a", 1, 2))
        .await
        .unwrap()
        .into_inner()
        .instances;
    let ids: Vec<&str> = created.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["dummy-a-0", "dummy-a-1"]);

    let status = remote
        .create_instances(create("b", 2, 2))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("1 available"),
        "{}",
        status.message()
    );

    assert_eq!(list(&remote, "").await, ["dummy-a-0", "dummy-a-1"]);
    assert!(list(&remote, "b").await.is_empty());

    let configured = remote
        .configure_instances(Request::new(ConfigureInstancesRequest {
            campaign: "a".into(),
            instance_ids: vec![],
            server_address: "http://127.0.0.1:1".into(),
            join_token: "t".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .configured;
    assert_eq!(configured, ["dummy-a-0", "dummy-a-1"]);

    let destroyed = remote
        .destroy_instances(Request::new(DestroyInstancesRequest {
            campaign: "a".into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .destroyed;
    assert_eq!(destroyed, ["dummy-a-0", "dummy-a-1"]);
    assert!(list(&remote, "").await.is_empty());

    server.abort();
}

#[tokio::test]
async fn the_service_answers_reflection() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let (addr, server) = serve_dummy().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(services)) = answer.message_response else {
        panic!("unexpected answer {answer:?}");
    };
    let names: Vec<String> = services.service.into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["camut.v1.Deployer"]);
    server.abort();
}

#[tokio::test]
async fn an_unreachable_deployer_is_unavailable() {
    // A port that was just free: nothing listens there.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let remote = RemoteDeployer::connect_lazy(format!("http://{addr}")).unwrap();
    let status = remote
        .list_instances(Request::new(ListInstancesRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

#[test]
fn an_invalid_address_is_refused() {
    let err = RemoteDeployer::connect_lazy("not a url").unwrap_err();
    assert!(matches!(err, Error::InvalidAddress { .. }), "{err}");
}
