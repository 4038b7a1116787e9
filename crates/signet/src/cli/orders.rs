//! `signet order list|show`: signing orders' state, title and their signers' progress. No
//! personal number, name or address is printed: signers appear by position and source.

use anyhow::Context;
use clap::Args;

use signet::store::operator::{OperatorStore, OrderSummary};

use super::{open, print_rows, print_table, show_time, OutputArgs};
use crate::StoreArgs;

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Most orders listed (newest first).
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
}

#[derive(Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    pub order_id: String,
}

/// `2/3 SIGNED` style progress.
fn progress(order: &OrderSummary) -> String {
    let signed = order
        .signers
        .iter()
        .filter(|s| s.status == "SIGNED")
        .count();
    format!("{signed}/{} signed", order.signers.len())
}

pub async fn list(args: ListArgs) -> anyhow::Result<()> {
    let (_, store) = open(&args.store).await?;
    let orders = store.list_orders(args.limit).await?;
    print_rows(
        args.output,
        &orders,
        &["ORDER", "STATE", "SIGNERS", "CREATED", "DUE", "TITLE"],
        |o| {
            vec![
                o.order_id.clone(),
                o.state.clone(),
                progress(o),
                show_time(o.created_at),
                show_time(o.due_at),
                o.title.clone(),
            ]
        },
    )
}

pub async fn show(args: ShowArgs) -> anyhow::Result<()> {
    let (_, store) = open(&args.store).await?;
    let order = store
        .order_summary(&args.order_id)
        .await?
        .with_context(|| format!("no order {}", args.order_id))?;
    if args.output.json {
        println!("{}", serde_json::to_string_pretty(&order)?);
        return Ok(());
    }
    println!(
        "order       {}\ntitle       {}\nstate       {}\nsignatures  {}\ncreated     {}\ndue         {}\n",
        order.order_id,
        order.title,
        order.state,
        order.signatures,
        show_time(order.created_at),
        show_time(order.due_at)
    );
    let rows: Vec<Vec<String>> = order
        .signers
        .iter()
        .map(|s| {
            vec![
                s.position.to_string(),
                s.priority_group.to_string(),
                s.source.clone(),
                s.status.clone(),
                s.action_at.map_or_else(|| "-".to_owned(), show_time),
            ]
        })
        .collect();
    print_table(&["SIGNER", "GROUP", "SOURCE", "STATUS", "ACTED"], &rows);
    Ok(())
}
