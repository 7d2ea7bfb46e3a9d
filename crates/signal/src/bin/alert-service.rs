//! `alert-service`: the Alert Service alone, consuming triggered alerts from Kafka.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    dontouch_signal::standalone::run(dontouch_signal::standalone::Service::Alert).await
}
