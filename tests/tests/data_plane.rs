//! The simulated kubelet's switches: broken images never become Ready, restart counts and
//! images are reported as a kubelet reports them.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use kube::api::{Api, ObjectMeta, PostParams};
use pinot_testbed::{
    data_plane::{ANNOTATION_RESTARTS, image_is_broken},
    harness::{TestNamespace, test_client, wait_for},
};

fn pod(name: &str, image: &str, annotations: BTreeMap<String, String>) -> Pod {
    Pod {
        metadata: ObjectMeta { name: Some(name.into()), annotations: Some(annotations), ..Default::default() },
        spec: Some(PodSpec {
            containers: vec![Container { name: "main".into(), image: Some(image.into()), ..Default::default() }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn ready(p: &Pod) -> Option<bool> {
    let c = p.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?;
    Some(c.status == "True")
}

#[test]
fn broken_tags() {
    assert!(image_is_broken("apachepinot/pinot:broken"));
    assert!(image_is_broken("registry:5000/apachepinot/pinot:1.3.0-broken"));
    assert!(!image_is_broken("apachepinot/pinot:1.3.0"));
    assert!(!image_is_broken("registry:5000/broken/pinot"));
}

#[tokio::test]
async fn broken_images_run_but_never_become_ready_and_restarts_are_reported() {
    let client = test_client().await;
    let ns = TestNamespace::create(&client, "kubelet").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let restarts = BTreeMap::from([(ANNOTATION_RESTARTS.to_string(), "3".to_string())]);
    pods.create(&PostParams::default(), &pod("good", "apachepinot/pinot:1.2.0", restarts)).await.unwrap();
    pods.create(&PostParams::default(), &pod("bad", "apachepinot/pinot:1.3.0-broken", BTreeMap::new())).await.unwrap();

    let good = wait_for("the good pod to be Ready", Duration::from_secs(60), || async {
        let p = pods.get("good").await.ok()?;
        (ready(&p) == Some(true)).then_some(p)
    })
    .await;
    let status = &good.status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0];
    assert_eq!(status.image, "apachepinot/pinot:1.2.0");
    assert_eq!(status.restart_count, 3);

    let bad = wait_for("the broken pod to be Running", Duration::from_secs(60), || async {
        let p = pods.get("bad").await.ok()?;
        (p.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(p)
    })
    .await;
    assert_eq!(ready(&bad), Some(false));
    // It stays that way: the kubelet has written its status once and leaves it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = pods.get("bad").await.unwrap();
    assert_eq!(ready(&later), Some(false));
    assert_eq!(later.metadata.resource_version, bad.metadata.resource_version, "no status churn for a broken pod");

    ns.cleanup().await;
}
