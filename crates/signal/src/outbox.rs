//! The operator's view of the outbox: the alert events the relay set aside because they can
//! never be published as they are, and putting one back in line once what refused it is fixed
//! (a broker's message size limit, say). Works on the Asset Service's database directly, so it
//! serves the embedded binary and the standalone services alike.

use anyhow::Context;
use clap::Subcommand;
use signal_ports::OutboxStore;
use signal_runtime::{adapters, Settings};

#[derive(Subcommand)]
pub enum OutboxCommand {
    /// List the dead letters, newest first, one JSON object a line.
    DeadLetters {
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Put the dead letter with this id back in line for the relay.
    Requeue { id: i64 },
}

pub async fn run(settings: &Settings, command: OutboxCommand) -> anyhow::Result<()> {
    let outbox = adapters::asset_store(settings).await?;
    match command {
        OutboxCommand::DeadLetters { limit } => {
            for letter in outbox.dead_letters(limit).await? {
                let line = serde_json::json!({
                    "id": letter.id,
                    "eventId": letter.event_id,
                    "reason": letter.reason,
                    "createdAt": letter.created_at,
                    "deadAt": letter.dead_at,
                    "payload": letter.payload,
                });
                println!("{line}");
            }
        }
        OutboxCommand::Requeue { id } => {
            let requeued = outbox
                .requeue_dead_letter(id)
                .await
                .context("putting the dead letter back in line")?;
            anyhow::ensure!(requeued, "there is no dead letter {id} in the outbox");
            println!("dead letter {id} is pending again; the relay publishes it next");
        }
    }
    Ok(())
}
