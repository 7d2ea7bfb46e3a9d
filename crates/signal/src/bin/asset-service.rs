//! `asset-service`: the Asset Service alone, publishing triggered alerts to Kafka.

fn main() -> anyhow::Result<()> {
    dontouch_signal::standalone::main(dontouch_signal::standalone::Service::Asset)
}
