//! `alert-service`: the Alert Service alone, consuming triggered alerts from Kafka.

fn main() -> anyhow::Result<()> {
    dontouch_signal::standalone::main(dontouch_signal::standalone::Service::Alert)
}
