//! `asset-service`: the Asset Service alone, publishing triggered alerts to Kafka.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    dontouch_signal::standalone::run(dontouch_signal::standalone::Service::Asset).await
}
