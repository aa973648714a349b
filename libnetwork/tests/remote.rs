//! A remote driver and a remote IPAM, served by our plugin server and used
//! through our plugin client, inside a fake host.

mod common;

use std::net::IpAddr;
use std::sync::Arc;

use common::*;
use libnetwork::remote::{serve, RemoteDriver, RemoteIpam, ServedPlugin};
use libnetwork::{EndpointConfig, LocalIpam, NetworkConfig, PortMapping, Proto, SandboxConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_and_ipam_served_as_plugins_work_through_the_client() {
    if !is_root() {
        return;
    }
    let fh = FakeHost::new().await;
    let ctl = fh.ctl();
    let plugins = tempfile::tempdir().unwrap();
    // The served bridge keeps its rules in a table of its own.
    let mut host = ctl.host().clone();
    host.nft_table = "berth-plugin".into();
    let ipam = LocalIpam::new(
        vec!["10.60.0.0/24".parse().unwrap()],
        "fd00:60::/48".parse().unwrap(),
    );
    let server = serve(
        ServedPlugin {
            driver: Some(Arc::new(libnetwork::drivers::BridgeDriver::new())),
            ipam: Some(Arc::new(ipam)),
            host,
        },
        &plugins.path().join("pbridge.sock"),
    )
    .unwrap();
    ctl.register_driver(Arc::new(
        RemoteDriver::connect(plugins.path(), "pbridge")
            .await
            .unwrap(),
    ));
    ctl.register_ipam(Arc::new(
        RemoteIpam::connect(plugins.path(), "pbridge")
            .await
            .unwrap(),
    ));
    assert!(RemoteDriver::connect(plugins.path(), "absent")
        .await
        .is_err());

    let net = ctl
        .create_network(
            NetworkConfig::builder("remote", "pbridge")
                .ipam_driver("pbridge")
                .build(),
        )
        .await
        .unwrap();
    assert_eq!(
        net.subnets[0].subnet.to_string(),
        "10.60.0.0/24",
        "pool from the remote IPAM"
    );
    let a = ctl.create_sandbox(SandboxConfig::new("ra")).await.unwrap();
    let b = ctl.create_sandbox(SandboxConfig::new("rb")).await.unwrap();
    ctl.attach("remote", &a.id, EndpointConfig::builder("ra").build())
        .await
        .unwrap();
    let eb = ctl
        .attach(
            "remote",
            &b.id,
            EndpointConfig::builder("rb")
                .port(PortMapping::new(Proto::Tcp, 8090, 80))
                .build(),
        )
        .await
        .unwrap();
    let ip: IpAddr = eb.addresses[0].addr();
    serve_tcp(&ns_of(&b.netns_path), addr(ip, 80), "remote");
    assert_eq!(
        tcp_get(&ns_of(&a.netns_path), addr(ip, 80)).unwrap(),
        "remote"
    );
    assert_eq!(
        tcp_get(&fh.outside.ns(), addr(HOST_IP.parse().unwrap(), 8090)).unwrap(),
        "remote",
        "ports through the plugin"
    );
    assert!(fh.nft_list().contains("table inet berth-plugin"));
    // Errors of the plugin come back with its name.
    let err = ctl
        .create_network(
            NetworkConfig::builder("remote2", "pbridge")
                .ipam_driver("pbridge")
                .build(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("plugin pbridge"), "{err}");
    ctl.delete_sandbox(&a.id).await.unwrap();
    ctl.delete_sandbox(&b.id).await.unwrap();
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_are_discovered_by_name_in_the_plugin_dir() {
    if !is_root() {
        return;
    }
    let mut fh = FakeHost::new().await;
    let plugins = tempfile::tempdir().unwrap();
    let mut host = fh.ctl().host().clone();
    host.nft_table = "berth-plugin".into();
    let server = serve(
        ServedPlugin {
            driver: Some(Arc::new(libnetwork::drivers::BridgeDriver::new())),
            ipam: None,
            host,
        },
        &plugins.path().join("found.sock"),
    )
    .unwrap();
    fh.ctl.take();
    fh.ctl = Some(
        libnetwork::Controller::new(fh.config().plugin_dir(plugins.path()))
            .await
            .unwrap(),
    );
    let ctl = fh.ctl();
    let net = ctl
        .create_network(NetworkConfig::builder("byname", "found").build())
        .await
        .unwrap();
    assert_eq!(net.config.driver, "found");
    let err = ctl
        .create_network(NetworkConfig::builder("nope", "missing").build())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    server.abort();
}
