//! The log-processor end to end against a private moto server, through the real SDK
//! clients: S3 → handler → DynamoDB items and SNS messages (read back from an SQS queue
//! subscribed to the topic).
#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::Moto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_creates_resources() {
    let Some(moto) = Moto::start("harness_creates_resources") else {
        return;
    };
    moto.create_findings_table("findings").await;
    let table = moto
        .dynamodb()
        .await
        .describe_table()
        .table_name("findings")
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    assert_eq!(table.global_secondary_indexes().len(), 2);
    moto.create_bucket("harness-bucket").await;
    moto.put_object("harness-bucket", "k", b"hi".to_vec()).await;
    let topic = moto.create_topic("alerts").await;
    let queue = moto.subscribe_queue(&topic, "alerts-q").await;
    moto.sns()
        .await
        .publish()
        .topic_arn(&topic)
        .subject("s")
        .message("m")
        .send()
        .await
        .unwrap();
    let got = moto.receive_all(&queue).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["Message"], "m");
    assert_eq!(got[0]["Subject"], "s");
}
